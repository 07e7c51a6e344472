#!/usr/bin/env python3
"""PyTorch's own post-training static INT8 quantization of the bundled digits CNN, as the
reference quench's INT8 QDQ quantizer is compared against.

Rebuilds the network from examples/data/digits/make_digits.py and digits_cnn_weights.npz (no
retraining), quantizes it with torch.ao.quantization FX graph mode (prepare_fx / convert_fx),
calibrates on exactly digits_calib.npy and scores top-1 on digits_test.npy. Prints one JSON line.

  /usr/bin/python3 bench/torch_ptq_digits.py [--per-tensor] [--backend B] [--qconfig Q] [--json FILE]

--qconfig picks the observers (default: the backend's default qconfig mapping; per-channel
weights for fbgemm and onednn, per-tensor for qnnpack); --per-tensor uses
torch.ao.quantization.default_qconfig instead (per-tensor weights, MinMax activations).
--backend is the quantized engine that runs the int8 model. Debian's torch 1.13 is built without
FBGEMM (supported engines: qnnpack, onednn), so the default is fbgemm where it exists and onednn,
the other x86 engine, where it does not; "backend" in the JSON is the engine that actually ran.
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np
import torch
from torch.ao.quantization import QConfigMapping, default_qconfig, get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "examples", "data", "digits")


def load_model():
    spec = importlib.util.spec_from_file_location("make_digits", os.path.join(DATA, "make_digits.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.DigitsCNN()
    with np.load(os.path.join(DATA, "digits_cnn_weights.npz")) as z:
        state = {k: torch.from_numpy(z[k]) for k in z.files}
    model.load_state_dict(state, strict=True)
    return model.eval()


def main():
    engines = torch.backends.quantized.supported_engines
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="fbgemm" if "fbgemm" in engines else "onednn",
                    help="quantized engine; available here: " + ", ".join(engines))
    ap.add_argument("--qconfig", help="default qconfig mapping of this backend (default: --backend)")
    ap.add_argument("--per-tensor", action="store_true",
                    help="torch.ao.quantization.default_qconfig: per-tensor weights")
    ap.add_argument("--json", metavar="FILE", help="also write the JSON line to FILE")
    args = ap.parse_args()
    if args.backend not in engines:
        sys.exit(f"torch_ptq_digits: engine {args.backend} not in this torch build ({', '.join(engines)})")
    torch.backends.quantized.engine = args.backend
    torch.manual_seed(0)
    torch.set_num_threads(1)

    calib = torch.from_numpy(np.load(os.path.join(DATA, "digits_calib.npy")))
    x_test = torch.from_numpy(np.load(os.path.join(DATA, "digits_test.npy")))
    y_test = np.load(os.path.join(DATA, "digits_test_labels.npy"))

    model = load_model()
    with torch.no_grad():
        ref_logits = model(x_test).numpy()
    ref = ref_logits.argmax(1)

    if args.per_tensor:
        qname = "default_qconfig"
        mapping = QConfigMapping().set_global(default_qconfig)
    else:
        qname = args.qconfig or args.backend
        mapping = get_default_qconfig_mapping(qname)
    prepared = prepare_fx(model, mapping, example_inputs=(calib[:1],))
    with torch.no_grad():
        # Observers are order-independent for min/max but HistogramObserver rebins as it goes:
        # one fixed batch order keeps the ranges reproducible.
        for s in range(0, len(calib), 32):
            prepared(calib[s:s + 32])
    qmodel = convert_fx(prepared)
    with torch.no_grad():
        got_logits = qmodel(x_test).numpy()
    got = got_logits.argmax(1)
    # Top-1 saturates on digits; the logit SQNR still separates one int8 scheme from another.
    err = np.sum((got_logits.astype(np.float64) - ref_logits) ** 2)
    sqnr = 10 * np.log10(np.sum(ref_logits.astype(np.float64) ** 2) / err) if err > 0 else float("inf")
    # Named from the qconfig actually used: qnnpack's default mapping is per-tensor too.
    per_channel = mapping.global_qconfig.weight().qscheme in (torch.per_channel_symmetric,
                                                               torch.per_channel_affine)

    result = {
        "fp32_top1": float((ref == y_test).mean()),
        "torch_int8_top1": float((got == y_test).mean()),
        "backend": args.backend,
        "qconfig": qname,
        "weights": "per_channel" if per_channel else "per_tensor",
        "calib_samples": int(len(calib)),
        "test_samples": int(len(x_test)),
        "agreement_with_fp32": float((got == ref).mean()),
        "logits_sqnr_db": round(float(sqnr), 2),
        "torch": torch.__version__,
    }
    line = json.dumps(result)
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
