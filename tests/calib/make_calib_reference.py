#!/usr/bin/python3
"""Reference thresholds for quench's calibrators (include/quench/calib/).

Usage:
  /usr/bin/python3 make_calib_reference.py OUTPUT_DIR      write the reference data
  /usr/bin/python3 make_calib_reference.py bench-entropy   seconds per ORT entropy search, 2048 bins
                                                           (one JSON line with the histogram too)
  /usr/bin/python3 make_calib_reference.py bench-histogram seconds per numpy.histogram, 64 MiB float32

Each reference algorithm is transcribed here in numpy exactly as the reference tool computes it
(sources: ../../shared/reference/ptq-calibrators.md):

  ONNX Runtime, onnxruntime/python/tools/quantization/calibrate.py + quant_utils.py
    HistogramCollector.collect_value / merge_histogram      (ORT histogram, signed, +-threshold)
    HistogramCollector.collect_absolute_value               (ORT histogram of |x|, np.arange growth)
    HistogramCollector.get_entropy_threshold + smooth_distribution
    HistogramCollector.compute_percentile                   (symmetric and asymmetric)
    MinMaxCalibrater.merge_range                            (moving average)
  pytorch-quantization, pytorch_quantization/calib/histogram.py (the numpy collection path)
    HistogramCalibrator.collect (torch_hist=False)
    _compute_amax_entropy, _compute_amax_mse, _compute_amax_percentile

scipy is not available: scipy.stats.entropy is written out below (normalise both, sum
p * log(p / q), scipy.special.rel_entr's rules for zeros), in float64. ORT's copy of the search
is also run on the KL in float64 (its float32-smoothed inputs are reproduced exactly); quench
documents the same choice.

Data sets (float32, fixed seed): gaussian, laplacian, relu (one-sided), heavy_tailed (Student t,
2 degrees of freedom), bimodal, spike (one value), all_zero. Each is split into unequal batches
so the ORT histograms grow. Everything is written to OUTPUT_DIR:

  <case>.f32          the data, little-endian float32
  reference.json      batch sizes, histograms (counts, float32 edge bits) and expected thresholds
                      as float32 bit patterns, per case; per-channel min-max and moving-average
                      references; see the C++ readers in tests/calib/*_test.cpp
"""

import json
import os
import struct
import sys
import time
import numpy as np

SEED = 20240611
N = 60000
BATCHES = [6000, 17000, 1000, 23000, 13000]  # unequal; sums to N


def bits(x):
    return int(np.array(x, dtype=np.float32).view(np.uint32))


def bits_list(a):
    return [int(v) for v in np.asarray(a, dtype=np.float32).view(np.uint32)]


# ---- scipy.stats.entropy (float64) ---------------------------------------------------------------

def entropy(pk, qk):
    pk = np.asarray(pk, dtype=np.float64)
    qk = np.asarray(qk, dtype=np.float64)
    pk = 1.0 * pk / np.sum(pk)
    qk = 1.0 * qk / np.sum(qk)
    # scipy.special.rel_entr: p>0,q>0: p log(p/q); p==0,q>=0: 0; otherwise inf
    with np.errstate(divide="ignore", invalid="ignore"):
        vec = np.where((pk > 0) & (qk > 0), pk * np.log(pk / qk), np.inf)
    vec = np.where((pk == 0) & (qk >= 0), 0.0, vec)
    return np.sum(vec)


# ---- ONNX Runtime ----------------------------------------------------------------------------------

def smooth_distribution(p, eps=0.0001):
    """quant_utils.smooth_distribution, verbatim semantics (float32 arithmetic)."""
    is_zeros = (p == 0).astype(np.float32)
    is_nonzeros = (p != 0).astype(np.float32)
    n_zeros = is_zeros.sum()
    n_nonzeros = p.size - n_zeros
    if not n_nonzeros:
        return None
    eps1 = eps * float(n_zeros) / float(n_nonzeros)
    assert eps1 < 1.0, "n_zeros=%d, n_nonzeros=%d, eps1=%f" % (n_zeros, n_nonzeros, eps1)
    hist = p.astype(np.float32)
    hist += eps * is_zeros + (-eps1) * is_nonzeros
    assert (hist <= 0).sum() == 0
    return hist


def ort_entropy_threshold(hist, hist_edges, min_value, max_value, num_quantized_bins, stride=1):
    """HistogramCollector.get_entropy_threshold transcribed line by line (the benchmark baseline).
    `stride` is quench's extension (ORT has none; 1 reproduces ORT)."""
    import copy

    num_bins = hist.size
    zero_bin_index = num_bins // 2
    num_half_quantized_bin = num_quantized_bins // 2
    dtype = hist_edges.dtype
    candidates = list(range(num_half_quantized_bin, zero_bin_index + 1, stride))
    kl_divergence = np.zeros(len(candidates))
    thresholds = [(np.array(0, dtype=dtype), np.array(0, dtype=dtype)) for i in range(kl_divergence.size)]

    for k, i in enumerate(candidates):
        start_index = zero_bin_index - i
        end_index = min(zero_bin_index + i + 1, num_bins)
        thresholds[k] = (hist_edges[start_index], hist_edges[end_index])
        sliced_distribution = copy.deepcopy(hist[start_index:end_index])
        p = sliced_distribution.copy()
        left_outliers_count = sum(hist[:start_index])
        right_outliers_count = sum(hist[end_index:])
        p[0] += left_outliers_count
        p[-1] += right_outliers_count
        nonzeros = (p != 0).astype(np.int64)
        quantized_bins = np.zeros(num_quantized_bins, dtype=np.int64)
        num_merged_bins = sliced_distribution.size // num_quantized_bins
        for index in range(num_quantized_bins):
            start = index * num_merged_bins
            end = start + num_merged_bins
            quantized_bins[index] = sum(sliced_distribution[start:end])
        quantized_bins[-1] += sum(sliced_distribution[num_quantized_bins * num_merged_bins:])
        q = np.zeros(p.size, dtype=np.int64)
        for index in range(num_quantized_bins):
            start = index * num_merged_bins
            end = start + num_merged_bins
            norm = sum(nonzeros[start:end])
            if norm != 0:
                q[start:end] = quantized_bins[index] / norm
        p = smooth_distribution(p)
        q = smooth_distribution(q)
        if p is None or q is None:
            div = np.inf
        else:
            div = entropy(p, q)
        kl_divergence[k] = div

    min_kl_divergence_idx = np.argmin(kl_divergence)
    optimal_threshold = thresholds[min_kl_divergence_idx]
    if optimal_threshold[0] < min_value:
        optimal_threshold = (min_value, optimal_threshold[1])
    if optimal_threshold[1] > max_value:
        optimal_threshold = (optimal_threshold[0], max_value)
    return optimal_threshold


def ort_entropy_threshold_vectorized(hist, hist_edges, min_value, max_value, num_quantized_bins, stride=1):
    """The same arithmetic as ort_entropy_threshold with the Python loops replaced by numpy
    (integer sums are exact either way); checked against the transcription on one case."""
    num_bins = hist.size
    zero_bin_index = num_bins // 2
    half = num_quantized_bins // 2
    kls, ths = [], []
    for i in range(half, zero_bin_index + 1, stride):
        s = zero_bin_index - i
        e = min(zero_bin_index + i + 1, num_bins)
        ths.append((hist_edges[s], hist_edges[e]))
        sliced = hist[s:e].copy()
        p = sliced.copy()
        p[0] += hist[:s].sum()
        p[-1] += hist[e:].sum()
        nonzeros = (p != 0).astype(np.int64)
        m = sliced.size // num_quantized_bins
        qb = sliced[: num_quantized_bins * m].reshape(num_quantized_bins, m).sum(axis=1)
        qb[-1] += sliced[num_quantized_bins * m:].sum()
        norms = nonzeros[: num_quantized_bins * m].reshape(num_quantized_bins, m).sum(axis=1)
        q = np.zeros(p.size, dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            vals = qb / norms
        vals = np.where(norms != 0, vals, 0)
        q[: num_quantized_bins * m] = np.repeat(vals, m).astype(np.int64)
        ps = smooth_distribution(p)
        qs = smooth_distribution(q)
        kls.append(np.inf if ps is None or qs is None else entropy(ps, qs))
    best = ths[int(np.argmin(np.array(kls)))]
    lo, hi = best
    if lo < min_value:
        lo = min_value
    if hi > max_value:
        hi = max_value
    return lo, hi


def ort_percentile(hist, hist_edges, min_value, max_value, percentile, symmetric):
    """HistogramCollector.compute_percentile."""
    total = hist.sum()
    cdf = np.cumsum(hist / total)
    if symmetric:
        idx_right = np.searchsorted(cdf, percentile / 100.0)
        th = (-np.array(hist_edges[idx_right], dtype=hist_edges.dtype),
              np.array(hist_edges[idx_right], dtype=hist_edges.dtype))
    else:
        percent_to_cut_one_side = (100.0 - percentile) / 200.0
        idx_right = np.searchsorted(cdf, 1.0 - percent_to_cut_one_side)
        idx_left = np.searchsorted(cdf, percent_to_cut_one_side)
        th = (np.array(hist_edges[idx_left], dtype=hist_edges.dtype),
              np.array(hist_edges[idx_right], dtype=hist_edges.dtype))
    if th[0] < min_value:
        th = (min_value, th[1])
    if th[1] > max_value:
        th = (th[0], max_value)
    return th


class OrtCollector:
    """HistogramCollector.collect_value / merge_histogram / collect_absolute_value."""

    def __init__(self, num_bins):
        self.num_bins = num_bins
        self.value = None
        self.absolute = None

    def collect_value(self, data_arr):
        data_arr = np.asarray(data_arr).flatten()
        if data_arr.size > 0:
            min_value = np.nanmin(data_arr)
            max_value = np.nanmax(data_arr)
        else:
            min_value = np.array(0, dtype=data_arr.dtype)
            max_value = np.array(0, dtype=data_arr.dtype)
        threshold = np.array(max(abs(min_value), abs(max_value)), dtype=data_arr.dtype)
        if self.value is not None:
            self.value = self.merge_histogram(self.value, data_arr, min_value, max_value, threshold)
        else:
            hist, hist_edges = np.histogram(data_arr, self.num_bins, range=(-threshold, threshold))
            self.value = (hist, hist_edges, min_value, max_value, threshold)

    @staticmethod
    def merge_histogram(old_histogram, data_arr, new_min, new_max, new_threshold):
        (old_hist, old_hist_edges, old_min, old_max, old_threshold) = old_histogram
        if new_threshold <= old_threshold:
            new_hist, _ = np.histogram(data_arr, len(old_hist), range=(-old_threshold, old_threshold))
            return (new_hist + old_hist, old_hist_edges, min(old_min, new_min), max(old_max, new_max), old_threshold)
        if old_threshold == 0:
            hist, hist_edges = np.histogram(data_arr, len(old_hist), range=(-new_threshold, new_threshold))
            hist += old_hist
        else:
            old_num_bins = len(old_hist)
            old_stride = 2 * old_threshold / old_num_bins
            half_increased_bins = int((new_threshold - old_threshold) // old_stride + 1)
            new_num_bins = old_num_bins + 2 * half_increased_bins
            new_threshold = half_increased_bins * old_stride + old_threshold
            hist, hist_edges = np.histogram(data_arr, new_num_bins, range=(-new_threshold, new_threshold))
            hist[half_increased_bins: new_num_bins - half_increased_bins] += old_hist
        return (hist, hist_edges, min(old_min, new_min), max(old_max, new_max), new_threshold)

    def collect_absolute_value(self, data_arr):
        data_arr_np = np.asarray(data_arr).flatten()
        if data_arr_np.size > 0:
            min_value = np.nanmin(data_arr_np)
            max_value = np.nanmax(data_arr_np)
        else:
            min_value = np.array(0, dtype=data_arr_np.dtype)
            max_value = np.array(0, dtype=data_arr_np.dtype)
        data_arr_np = np.absolute(data_arr_np)
        if self.absolute is None:
            hist, hist_edges = np.histogram(data_arr_np, bins=self.num_bins)
            hist_edges = hist_edges.astype(data_arr_np.dtype)
            self.absolute = (hist, hist_edges, min_value, max_value)
        else:
            old_hist, old_hist_edges, old_min, old_max = self.absolute
            temp_amax = np.nanmax(data_arr_np)
            if temp_amax > old_hist_edges[-1]:
                width = old_hist_edges[1] - old_hist_edges[0]
                new_bin_edges = np.arange(old_hist_edges[-1] + width, temp_amax + width, width)
                old_hist_edges = np.hstack((old_hist_edges, new_bin_edges))
            hist, hist_edges = np.histogram(data_arr_np, bins=old_hist_edges)
            hist_edges = hist_edges.astype(data_arr_np.dtype)
            hist[: len(old_hist)] += old_hist
            self.absolute = (hist, hist_edges, min(old_min, min_value), max(old_max, max_value))


def ort_moving_average(batches, averaging_constant, symmetric):
    """MinMaxCalibrater with moving_average=True, one collect_data call per batch: the per-call
    range (ReduceMin/ReduceMax, nanmean over the call's single batch) merged by merge_range."""
    rng = None
    for b in batches:
        mn = np.array([np.min(b)], dtype=np.float32)  # ReduceMin keepdims + Reshape([-1])
        mx = np.array([np.max(b)], dtype=np.float32)
        mn = np.nanmean([mn], axis=0)
        mx = np.nanmean([mx], axis=0)
        if symmetric:
            m = np.nanmax([np.abs(mn), np.abs(mx)], axis=0)
            pair = (-m, m)
        else:
            pair = (mn, mx)
        if rng is None:
            rng = pair
        else:
            old_min, old_max = rng
            new_min, new_max = pair
            rng = (old_min + averaging_constant * (new_min - old_min),
                   old_max + averaging_constant * (new_max - old_max))
    return rng


# ---- pytorch-quantization ----------------------------------------------------------------------------

def pq_collect(batches, num_bins=2048):
    """HistogramCalibrator.collect with torch_hist=False (numpy path)."""
    calib_hist, calib_bin_edges = None, None
    for x_np in batches:
        x_np = np.abs(x_np)
        if calib_bin_edges is None and calib_hist is None:
            calib_hist, calib_bin_edges = np.histogram(x_np, bins=num_bins)
        else:
            temp_amax = np.max(x_np)
            if temp_amax > calib_bin_edges[-1]:
                width = calib_bin_edges[1] - calib_bin_edges[0]
                new_bin_edges = np.arange(calib_bin_edges[-1] + width, temp_amax + width, width)
                calib_bin_edges = np.hstack((calib_bin_edges, new_bin_edges))
            hist, calib_bin_edges = np.histogram(x_np, bins=calib_bin_edges)
            hist[: len(calib_hist)] += calib_hist
            calib_hist = hist
    return calib_hist, calib_bin_edges


def pq_entropy(calib_hist, calib_bin_edges, num_bits=8, unsigned=False, stride=1, start_bin=128):
    """_compute_amax_entropy; the per-index Python loops and the Counter are replaced by bincount
    (float64 sums of integers, exact; integer counts) with the same results."""
    bins = calib_hist[:].copy()
    bins[0] = bins[1]
    total_data = np.sum(bins)
    divergences = []
    nbins = 1 << (num_bits - 1 + int(unsigned))
    starting = start_bin
    stop = len(bins)
    for i in range(starting, stop + 1, stride):
        space = np.linspace(0, i, num=nbins + 1)
        digitized_space = np.digitize(range(i), space) - 1
        digitized_space[bins[:i] == 0] = -1
        valid = digitized_space != -1
        new_density_counts = np.bincount(digitized_space[valid], weights=bins[:i][valid].astype(np.float64),
                                         minlength=nbins)
        # Counter(digitized_space) without key -1: the number of non-zero bins per group
        counter = np.bincount(digitized_space[valid], minlength=nbins)
        present = counter > 0
        new_density_counts[present] = new_density_counts[present] / counter[present]
        new_density = np.zeros(i, dtype=np.float64)
        new_density[valid] = new_density_counts[digitized_space[valid]]
        reference_density = np.array(bins[: len(digitized_space)])
        reference_density[-1] += np.sum(bins[i:])
        total_counts_new = np.sum(new_density) + np.sum(bins[i:])
        total_counts_old = np.sum(reference_density)
        if round(total_counts_new) != total_data or round(total_counts_old) != total_data:
            raise RuntimeError("Count mismatch")
        divergences.append(entropy(reference_density, new_density))
    divergences = np.array(divergences)
    last_argmin = len(divergences) - 1 - np.argmin(divergences[::-1])
    return calib_bin_edges[last_argmin * stride + starting]


def pq_fake_quant(inputs, amax, num_bits=8, unsigned=False, narrow_range=True):
    """tensor_quant._tensor_quant + FakeTensorQuantFunction.forward in torch float32."""
    import torch

    max_bound = torch.tensor((2.0 ** (num_bits - 1 + int(unsigned))) - 1.0)
    if unsigned:
        min_bound = 0
    elif narrow_range:
        min_bound = -max_bound
    else:
        min_bound = -max_bound - 1
    scale = max_bound / amax
    epsilon = 1.0 / (1 << 24)
    if amax <= epsilon:
        scale = torch.zeros_like(scale)
    outputs = torch.clamp((inputs * scale).round_(), min_bound, max_bound)
    if amax <= epsilon:
        scale = torch.ones_like(scale)
    return outputs / scale


def pq_mse(calib_hist, calib_bin_edges, num_bits=8, unsigned=False, stride=1, start_bin=128):
    """_compute_amax_mse on CPU; the mean is accumulated in float64 (quench does the same)."""
    import torch

    counts = torch.from_numpy(calib_hist[:].astype(np.float32))
    edges = torch.from_numpy(calib_bin_edges[:].astype(np.float32))
    centers = (edges[1:] + edges[:-1]) / 2
    mses, arguments = [], []
    for i in range(start_bin, len(centers), stride):
        amax = centers[i]
        quant_centers = pq_fake_quant(centers, amax, num_bits, unsigned)
        d = quant_centers.double() - centers.double()
        mse = (d * d * counts.double()).mean()
        mses.append(float(mse))
        arguments.append(i)
    argmin = int(np.argmin(mses))
    return centers[arguments[argmin]].numpy()


def pq_percentile(calib_hist, calib_bin_edges, percentile):
    total = calib_hist.sum()
    cdf = np.cumsum(calib_hist / total)
    idx = np.searchsorted(cdf, percentile / 100)
    return calib_bin_edges[idx]


# ---- quench's power-of-two histogram, computed independently ---------------------------------------

def pow2_histogram(x, num_bins, absolute):
    """Range 2^e (absolute: [0, 2^e); signed: [-2^e, 2^e)) with 2^e > max|x| (frexp exponent),
    e >= -64; bin = floor(x / width) (+ num_bins/2 when signed), exact in float64."""
    x = x[np.isfinite(x)].astype(np.float64)
    amax = np.max(np.abs(x)) if x.size else 0.0
    e = int(np.frexp(amax)[1]) if amax > 0 else -64
    e = max(e, -64)
    lg = num_bins.bit_length() - 1
    if absolute:
        scale = np.ldexp(1.0, lg - e)
        idx = np.floor(np.abs(x) * scale).astype(np.int64)
        edges = np.arange(num_bins + 1, dtype=np.float64) * np.ldexp(1.0, e - lg)
    else:
        scale = np.ldexp(1.0, lg - 1 - e)
        idx = (num_bins // 2 + np.floor(x * scale)).astype(np.int64)
        edges = (np.arange(num_bins + 1, dtype=np.float64) - num_bins // 2) * np.ldexp(1.0, e + 1 - lg)
    counts = np.bincount(idx, minlength=num_bins)
    assert counts.size == num_bins
    return counts.astype(np.int64), edges.astype(np.float32), e


# ---- data ----------------------------------------------------------------------------------------------

def make_cases():
    rng = np.random.default_rng(SEED)
    g = rng.standard_normal(N)
    cases = {
        "gaussian": 1.7 * g + 0.3,
        "laplacian": rng.laplace(0.0, 0.8, N),
        "relu": np.maximum(0.0, 2.0 * g - 0.5),
        "heavy_tailed": rng.standard_t(2.0, N),
        "bimodal": np.where(rng.random(N) < 0.35, rng.normal(-3.0, 0.4, N), rng.normal(2.0, 0.7, N)),
        "spike": np.full(N, 1.25),
        "all_zero": np.zeros(N),
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in cases.items()}


def split(x):
    out, at = [], 0
    for n in BATCHES:
        out.append(x[at: at + n])
        at += n
    assert at == x.size
    return out


def hist_json(counts, edges, min_value, max_value):
    return {"counts": [int(c) for c in counts], "edges": bits_list(edges),
            "min": bits(min_value), "max": bits(max_value)}


def case_reference(name, x):
    batches = split(x)
    out = {"file": name + ".f32", "batches": BATCHES}

    # ORT histograms, built batch by batch as ORT does.
    for num_bins in (2048, 128):
        col = OrtCollector(num_bins)
        for b in batches:
            col.collect_value(b)
            col.collect_absolute_value(b)
        hist, edges, mn, mx, _ = col.value
        r = hist_json(hist, edges, mn, mx)
        r["entropy"] = {}
        for nq in (128, 256):
            if nq // 2 > hist.size // 2:
                continue
            lo, hi = ort_entropy_threshold_vectorized(hist, edges, mn, mx, nq)
            r["entropy"][str(nq)] = [bits(lo), bits(hi)]
        lo, hi = ort_entropy_threshold_vectorized(hist, edges, mn, mx, 128, stride=3)
        r["entropy_stride3"] = [bits(lo), bits(hi)]
        r["percentile"] = {}
        for p in (99.999, 99.99, 99.9, 90.0):
            lo, hi = ort_percentile(hist, edges, mn, mx, p, symmetric=False)
            r["percentile"][repr(p)] = [bits(lo), bits(hi)]
        out["ort_value_%d" % num_bins] = r

        ahist, aedges, amn, amx = col.absolute
        a = hist_json(ahist, aedges, amn, amx)
        a["percentile"] = {}
        for p in (99.999, 99.99, 99.9, 90.0):
            lo, hi = ort_percentile(ahist, aedges, amn, amx, p, symmetric=True)
            a["percentile"][repr(p)] = [bits(lo), bits(hi)]
        out["ort_absolute_%d" % num_bins] = a

    # pytorch-quantization on its own (numpy path) histogram.
    ph, pe = pq_collect(batches)
    p = {"counts": [int(c) for c in ph], "edges": bits_list(pe)}
    p["entropy"] = bits(pq_entropy(ph, pe))
    p["entropy_stride4_start256"] = bits(pq_entropy(ph, pe, stride=4, start_bin=256))
    p["entropy_unsigned"] = bits(pq_entropy(ph, pe, unsigned=True))
    p["mse"] = bits(pq_mse(ph, pe))
    p["mse_stride2_4bit"] = bits(pq_mse(ph, pe, num_bits=4, stride=2, start_bin=64))
    p["percentile"] = {repr(q): bits(pq_percentile(ph, pe, q)) for q in (99.99, 99.9, 99.0)}
    out["pq"] = p

    # The same range methods on quench's own power-of-two histograms.
    for absolute in (False, True):
        counts, edges, e = pow2_histogram(x, 2048, absolute)
        finite = x[np.isfinite(x)]
        mn, mx = np.min(finite), np.max(finite)
        q = hist_json(counts, edges, mn, mx)
        q["exponent"] = e
        if absolute:
            q["pq_entropy"] = bits(pq_entropy(counts, edges))
            q["pq_mse"] = bits(pq_mse(counts, edges))
            q["pq_percentile"] = bits(pq_percentile(counts, edges, 99.99))
            lo, hi = ort_percentile(counts, edges, mn, mx, 99.999, symmetric=True)
            q["ort_percentile"] = [bits(lo), bits(hi)]
            out["pow2_absolute"] = q
        else:
            lo, hi = ort_entropy_threshold_vectorized(counts, edges, mn, mx, 128)
            q["ort_entropy"] = [bits(lo), bits(hi)]
            lo, hi = ort_percentile(counts, edges, mn, mx, 99.99, symmetric=False)
            q["ort_percentile"] = [bits(lo), bits(hi)]
            out["pow2_signed"] = q

    # ORT MinMax with moving average.
    for sym in (False, True):
        lo, hi = ort_moving_average(batches, 0.01, sym)
        out["moving_average" + ("_symmetric" if sym else "")] = [bits(lo[0]), bits(hi[0])]
    return out


def per_channel_reference(out_dir):
    """Per-channel min-max along every axis of a [3, 5, 4, 6] tensor with NaN and +-Inf sprinkled
    in (excluded, as quench does: nanmin/nanmax over the finite values)."""
    rng = np.random.default_rng(SEED + 1)
    x = (rng.standard_normal((3, 5, 4, 6)) * 3.0).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, 9, replace=False)] = np.nan
    flat[rng.choice(flat.size, 4, replace=False)] = np.inf
    flat[rng.choice(flat.size, 4, replace=False)] = -np.inf
    x.tofile(os.path.join(out_dir, "per_channel.f32"))
    ref = {"file": "per_channel.f32", "shape": list(x.shape), "axes": {}}
    finite = np.where(np.isfinite(x), x, np.nan)
    for axis in range(x.ndim):
        other = tuple(a for a in range(x.ndim) if a != axis)
        ref["axes"][str(axis)] = {"min": bits_list(np.nanmin(finite, axis=other)),
                                  "max": bits_list(np.nanmax(finite, axis=other))}
    ref["nan"] = int(np.isnan(x).sum())
    ref["pos_inf"] = int(np.isposinf(x).sum())
    ref["neg_inf"] = int(np.isneginf(x).sum())
    return ref


def tables_reference():
    """Calibration tables as the reference tools write them, for the format round-trip tests."""
    rng = np.random.default_rng(SEED + 2)
    names = ["input.1", "conv1/Relu:0", "(Unnamed Layer* 3) [Convolution]_output", "fc_out", "x\u00e9y"]
    entries = []
    cache = {}
    for i, name in enumerate(names):
        lo = np.float32(-abs(rng.standard_normal()) * 10 ** rng.uniform(-3, 3))
        hi = np.float32(abs(rng.standard_normal()) * 10 ** rng.uniform(-3, 3))
        if i == 3:
            lo = np.float32(0.0)
        entries.append([name, bits(lo), bits(hi)])
        cache[name] = (float(lo), float(hi))
    # ORT write_calibration_table, classic form: json.dumps of {tensor: (min, max)}
    ort_json = json.dumps(cache)
    ort_json_sorted = json.dumps(dict(sorted(cache.items())))
    # newer ORT: TensorsData through its JSON encoder (numpy arrays as {"data", "dtype", "CLS"})
    tensors_data = {"CLS": "TensorsData",
                    "data": {k: {"lowest": {"data": v[0], "dtype": "float32", "CLS": "numpy.array"},
                                 "highest": {"data": v[1], "dtype": "float32", "CLS": "numpy.array"},
                                 "CLS": "TensorData"} for k, v in cache.items()},
                    "calibration_method": {"CLS": "CalibrationMethod", "value": "CalibrationMethod.MinMax"}}
    # TensorRT cache: big-endian hex of the float32 scale amax / 127
    trt = "TRT-8601-EntropyCalibration2\n"
    for name in sorted(cache):
        lo, hi = cache[name]
        scale = np.float32(max(abs(lo), abs(hi)) / 127.0)
        trt += "%s: %s\n" % (name, struct.pack(">f", scale).hex())
    # ncnn2table: "%f " per scale (127 / amax), weights per output channel as <layer>_param_0
    ncnn = ""
    ncnn_entries = []
    for name in ["conv1_param_0", "conv2_param_0"]:
        amax = np.abs(rng.standard_normal(4).astype(np.float32)) + np.float32(0.01)
        scales = [np.float32(127 / a) for a in amax]
        ncnn += name + " " + "".join("%f " % s for s in scales) + "\n"
        ncnn_entries.append([name, [bits(np.float32(float("%f" % s))) for s in scales]])
    for name in ["conv1", "conv2"]:
        s = np.float32(127 / np.float32(abs(rng.standard_normal()) * 5))
        ncnn += "%s %f \n" % (name, s)
        ncnn_entries.append([name, [bits(np.float32(float("%f" % s)))]])
    # Python's float repr, the number format of ORT's JSON and of quench's
    vals = [0.0, -0.0, 1.0, 0.1, 1e-4, 1e-5, 123456789.0, 1e16, 1e15, 1234567890123456.0, 1.5e-7, 5e-324,
            1.7976931348623157e308, float(np.float32(0.1)), -2.5e-05, 3.0e22, 12345.678]
    vals += [float(v) for v in rng.standard_normal(40) * 10.0 ** rng.integers(-30, 30, 40)]
    reprs = [[int(np.array(v).view(np.uint64)), repr(v)] for v in vals]
    return {"entries": entries, "ort_json": ort_json, "ort_json_sorted": ort_json_sorted, "ort_tensors_data": json.dumps(tensors_data),
            "tensorrt": trt, "ncnn": ncnn, "ncnn_entries": ncnn_entries, "repr": reprs}


def write_reference(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    cases = make_cases()
    # The vectorized ORT search must equal the line-by-line transcription.
    col = OrtCollector(2048)
    for b in split(cases["laplacian"]):
        col.collect_value(b)
    h, ed, mn, mx, _ = col.value
    a = ort_entropy_threshold(h, ed, mn, mx, 128, stride=7)
    b = ort_entropy_threshold_vectorized(h, ed, mn, mx, 128, stride=7)
    assert bits(a[0]) == bits(b[0]) and bits(a[1]) == bits(b[1]), (a, b)

    ref = {"cases": {}}
    for name, x in cases.items():
        x.tofile(os.path.join(out_dir, name + ".f32"))
        ref["cases"][name] = case_reference(name, x)
    ref["per_channel"] = per_channel_reference(out_dir)
    ref["tables"] = tables_reference()
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f)


# ---- benchmark baselines ----------------------------------------------------------------------------

def bench_hist():
    """Counts of a 2048-bin ORT histogram of Gaussian data, as the entropy benchmark uses."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(1 << 20).astype(np.float32)
    col = OrtCollector(2048)
    col.collect_value(x)
    return col.value


def bench_entropy():
    """One JSON line: the histogram, the seconds the transcription takes on it, its threshold."""
    hist, edges, mn, mx, _ = bench_hist()
    t0 = time.perf_counter()
    lo, hi = ort_entropy_threshold(hist, edges, mn, mx, 128)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "lo": bits(lo), "hi": bits(hi), "min": bits(mn), "max": bits(mx),
                      "counts": [int(c) for c in hist], "edges": bits_list(edges)}))


def bench_histogram():
    x = np.random.default_rng(3).standard_normal(16 << 20).astype(np.float32)
    np.histogram(x[: 1 << 20], 2048, range=(-6.0, 6.0))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        np.histogram(x, 2048, range=(-6.0, 6.0))
        best = min(best, time.perf_counter() - t0)
    print("%.6f" % best)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    if sys.argv[1] == "bench-entropy":
        bench_entropy()
    elif sys.argv[1] == "bench-histogram":
        bench_histogram()
    else:
        write_reference(sys.argv[1])
