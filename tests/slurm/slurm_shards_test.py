#!/usr/bin/python3
"""Sharded calibration on a real Slurm cluster and through the Kubernetes Indexed Job's scripts.

  slurm_shards_test.py --quench QUENCH --source-dir REPO

1. One unsharded `quench calibrate` pass over the digits calibration set: the reference.
2. Slurm: starts a single-node cluster from Debian's slurm-wlm on this machine (slurmctld and
   slurmd as root on two free localhost ports, auth/none, cred/none, proctrack/linuxproc,
   task/none; every file under a temporary directory), submits examples/slurm/
   calibrate_array.sbatch as `sbatch --array=0-3` and examples/slurm/merge.sbatch with
   `--dependency=afterok:<array job>`, waits for both, and requires all five jobs COMPLETED with
   exit code 0 and the merged state and range table byte-identical to the reference's.
3. Kubernetes: examples/kubernetes/calibrate-indexed-job.yaml must parse (python3-yaml) as an
   Indexed Job with completions == parallelism == SHARDS and a merge Job; its container scripts
   then run here with /bin/sh (JOB_COMPLETION_INDEX = 0..3, the volume paths moved to a temporary
   directory), and their merged state must equal the reference too.

The daemons are this process's children (foreground, PR_SET_PDEATHSIG) and this process is a
child subreaper, so job steps stay in its tree; on any exit (error, timeout, SIGTERM/SIGINT/SIGHUP)
it cancels the jobs, stops every process the cluster started and removes the directory. A run
that was SIGKILLed leaves a directory that the next run removes. Exit code 77 (SKIP) only when
slurm-wlm is not installed.
"""
import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
DEADLINE_SECONDS = 150  # the whole test; ctest's TIMEOUT is above it
PREFIX = "quench-slurm-"
SHARDS = 4
DAEMONS = ("slurmctld", "slurmd")
CLIENTS = ("sbatch", "sinfo", "scontrol", "squeue", "scancel")
PLUGINS = ("auth_none", "cred_none", "proctrack_linuxproc", "task_none", "select_cons_tres", "jobcomp_filetxt")
PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/slurm-wlm"

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


def fail(msg):
    raise SystemExit(f"FAILED: {msg}")


def run(args, timeout=60, env=None, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        fail(f"{' '.join(map(str, args))} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def die_with_parent():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def remove_stale_dirs():
    """Directories of earlier runs whose process is gone (a SIGKILL skips every cleanup)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        d = os.path.join(root, name)
        if not name.startswith(PREFIX) or not os.path.isdir(d):
            continue
        try:
            pid = int(open(os.path.join(d, "owner.pid")).read())
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            if time.time() - os.path.getmtime(d) < 3600:
                continue
        shutil.rmtree(d, ignore_errors=True)


def descendants():
    """PIDs whose parent chain reaches this process (job steps re-parent here: subreaper)."""
    parent = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    stat = f.read()
                parent[int(p)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    me, out = os.getpid(), []
    for pid in parent:
        q, seen = pid, 0
        while q in parent and q != me and seen < 64:
            q, seen = parent[q], seen + 1
        if q == me and pid != me:
            out.append(pid)
    return out


class Cluster:
    def __init__(self, work, source_dir):
        self.work = work
        self.procs = {}
        self.conf = os.path.join(work, "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.source_dir = source_dir

    def write_conf(self):
        ctld_port, slurmd_port = free_ports(2)
        for d in ("state", "spool", "log"):
            os.makedirs(os.path.join(self.work, d))
        cpus = os.cpu_count() or 1
        w = self.work
        conf = f"""# single-node test cluster (tests/slurm/slurm_shards_test.py)
ClusterName=quenchtest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={w}/state
SlurmdSpoolDir={w}/spool
SlurmctldPidFile={w}/slurmctld.pid
SlurmdPidFile={w}/slurmd.pid
SlurmctldLogFile={w}/log/slurmctld.log
SlurmdLogFile={w}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={w}/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
NodeName=localhost CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=10 State=UP
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        return ctld_port, slurmd_port

    def start(self):
        ports = self.write_conf()
        # Foreground (-D) so they stay children of this process; -c: no state from earlier runs.
        for name, args in (("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", self.conf]),
                           ("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", self.conf])):
            log = open(os.path.join(self.work, "log", name + ".stderr"), "w")
            self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                preexec_fn=die_with_parent)
            if name == "slurmctld":
                self.wait(lambda: "UP" in run(["scontrol", "ping"], timeout=10, env=self.env, check=False).stdout,
                          20, "slurmctld answering scontrol ping")
        self.wait(lambda: run(["sinfo", "-h", "-n", "localhost", "-o", "%T"], timeout=10, env=self.env,
                              check=False).stdout.strip() == "idle", 30, "node localhost idle in sinfo")
        return ports

    def logs(self):
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.stderr", "slurmd.stderr"):
            p = os.path.join(self.work, "log", name)
            if os.path.exists(p):
                out.append(f"--- {name} (last lines)\n" + "".join(open(p, errors="replace").readlines()[-25:]))
        return "\n".join(out)

    def wait(self, ready, seconds, what):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    fail(f"{name} exited with {p.returncode} while waiting for {what}\n{self.logs()}")
            if ready():
                return
            time.sleep(0.3)
        fail(f"timed out after {seconds} s waiting for {what}\n{self.logs()}")

    def sbatch(self, *args, env):
        r = run(["sbatch", "--parsable", *args], timeout=20, env=env)
        return r.stdout.strip().split(";")[0]

    def stop(self):
        shield()
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            run(["scancel", "--user", "root"], timeout=10, env=self.env, check=False)
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        # Whatever the daemons left (slurmscriptd, a job step): all in this process's tree.
        for pid in descendants():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while descendants() and time.monotonic() < deadline:
            try:
                os.waitpid(-1, os.WNOHANG)  # reap what was re-parented here
            except ChildProcessError:
                pass
            time.sleep(0.1)


def jobcomp(path):
    """JobId -> {field: value} from jobcomp/filetxt's log."""
    jobs = {}
    if os.path.exists(path):
        for line in open(path):
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobId" in fields:
                jobs[fields["JobId"]] = fields
    return jobs


def compare(what, merged_state, merged_table, ref_state, ref_table, model_renamed=False):
    """Byte-identical, or (model_renamed) identical but for the model's file name in the metadata;
    numbers compared exactly either way (json gives doubles that round-trip)."""
    a, b = open(merged_state, "rb").read(), open(ref_state, "rb").read()
    ja, jb = json.loads(a), json.loads(b)
    if model_renamed:
        ja["metadata"].pop("model", None)
        jb["metadata"].pop("model", None)
    if a != b and not (model_renamed and ja == jb):
        diff = [t for t in set(ja["tensors"]) | set(jb["tensors"]) if ja["tensors"].get(t) != jb["tensors"].get(t)]
        fail(f"{what}: merged state differs from one pass (metadata {ja.get('metadata')} vs {jb.get('metadata')}; "
             f"tensors differing: {sorted(diff)[:5]})")
    if open(merged_table, "rb").read() != open(ref_table, "rb").read():
        fail(f"{what}: range table of the merged shards differs from one pass")
    return len(ja["tensors"])


def slurm_run(work, args, ref_state, ref_table):
    cluster = Cluster(os.path.join(work, "cluster"), args.source_dir)
    os.makedirs(cluster.work)
    try:
        t0 = time.monotonic()
        ctld_port, slurmd_port = cluster.start()
        started = time.monotonic() - t0
        states = os.path.join(work, "slurm_states")
        env = dict(cluster.env, QUENCH=args.quench, MODEL=args.model, DATA=f"input={args.data}", STATES=states,
                   METHOD=args.method, SHARDS=str(SHARDS), MERGED=os.path.join(states, "merged.json"),
                   TABLE=os.path.join(states, "ranges.json"), FORMAT="json")
        ex = os.path.join(args.source_dir, "examples", "slurm")
        out = os.path.join(work, "slurm_out")
        os.makedirs(out)
        # The README's lines: the array job, then the merge once all of it succeeded.
        array = cluster.sbatch(f"--array=0-{SHARDS - 1}", f"--output={out}/calibrate-%A_%a.out", f"--chdir={work}",
                               os.path.join(ex, "calibrate_array.sbatch"), env=env)
        merge = cluster.sbatch(f"--dependency=afterok:{array}", f"--output={out}/merge-%j.out", f"--chdir={work}",
                               os.path.join(ex, "merge.sbatch"), env=env)

        def outputs():
            return "\n".join(f"--- {f}\n" + open(os.path.join(out, f), errors="replace").read()
                             for f in sorted(os.listdir(out)))

        def done():
            q = run(["squeue", "-h", "-o", "%i %T %r"], timeout=10, env=cluster.env).stdout
            if "DependencyNeverSatisfied" in q:
                fail(f"the merge job will never run (a shard failed):\n{q}\n{outputs()}\n{cluster.logs()}")
            return q.strip() == ""
        cluster.wait(done, 90, "the array and merge jobs to finish")
        ran = time.monotonic() - t0 - started

        jobs = jobcomp(os.path.join(cluster.work, "log", "jobcomp.txt"))
        tasks = sorted(j.get("ArrayTaskId", "") for j in jobs.values() if j.get("ArrayJobId") == array)
        if tasks != [str(k) for k in range(SHARDS)]:
            fail(f"array job {array} ran tasks {tasks}, expected 0..{SHARDS - 1}\n{outputs()}")
        if merge not in jobs:
            fail(f"merge job {merge} did not run\n{outputs()}\n{cluster.logs()}")
        for j in jobs.values():
            if j.get("JobState") != "COMPLETED" or j.get("ExitCode") != "0:0":
                fail(f"job {j['JobId']} ended {j.get('JobState')} exit {j.get('ExitCode')}\n{outputs()}")
        for k in range(SHARDS):
            meta = json.load(open(os.path.join(states, f"shard-{k}.json")))["metadata"]
            if meta.get("shard") != f"{k}/{SHARDS}":
                fail(f"shard-{k}.json says shard {meta.get('shard')}")
        n = compare("slurm", env["MERGED"], env["TABLE"], ref_state, ref_table)

        # A failing shard (its data file is missing): afterok must keep the merge from running.
        bad_states = os.path.join(work, "slurm_states_bad")
        bad_env = dict(env, DATA=f"input={work}/missing.npy", STATES=bad_states, MERGED=os.path.join(bad_states, "merged.json"))
        bad_array = cluster.sbatch(f"--array=0-{SHARDS - 1}", f"--output={out}/bad-%A_%a.out", f"--chdir={work}",
                                   os.path.join(ex, "calibrate_array.sbatch"), env=bad_env)
        bad_merge = cluster.sbatch(f"--dependency=afterok:{bad_array}", f"--output={out}/bad-merge-%j.out", f"--chdir={work}",
                                   os.path.join(ex, "merge.sbatch"), env=bad_env)

        def never():
            q = run(["squeue", "-h", "-j", bad_merge, "-o", "%r"], timeout=10, env=cluster.env).stdout
            return "DependencyNeverSatisfied" in q
        cluster.wait(never, 60, f"merge job {bad_merge} to be held by its failed dependency")
        run(["scancel", bad_merge], timeout=10, env=cluster.env)
        bad = [j for j in jobcomp(os.path.join(cluster.work, "log", "jobcomp.txt")).values() if j.get("ArrayJobId") == bad_array]
        if len(bad) != SHARDS or any(j.get("JobState") != "FAILED" for j in bad):
            fail(f"the failing array job {bad_array} ended {[(j.get('ArrayTaskId'), j.get('JobState')) for j in bad]}")
        if os.path.exists(bad_env["MERGED"]):
            fail("the merge ran although its shards failed")
        log = open(os.path.join(out, f"bad-{bad_array}_0.out")).read()
        if "missing.npy" not in log:
            fail(f"a failed shard's output does not name the missing file:\n{log}")
        print(f"slurm: cluster up in {started:.1f} s (slurmctld :{ctld_port}, slurmd :{slurmd_port}); "
              f"array job {array} (tasks 0-{SHARDS - 1}) + merge job {merge} (afterok) in {ran:.1f} s, all COMPLETED; "
              f"merged state of {n} tensors and its range table byte-identical to one pass; with a missing data file "
              f"the 4 tasks FAILED and the merge stayed held (DependencyNeverSatisfied)")
    finally:
        cluster.stop()


def kubernetes_run(work, args, ref_state, ref_table):
    import yaml  # python3-yaml
    path = os.path.join(args.source_dir, "examples", "kubernetes", "calibrate-indexed-job.yaml")
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    jobs = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Job" and d.get("apiVersion") == "batch/v1"}
    if set(jobs) != {"quench-calibrate", "quench-merge"}:
        fail(f"{path}: expected Jobs quench-calibrate and quench-merge, found {sorted(jobs)}")
    cal = jobs["quench-calibrate"]["spec"]
    if cal.get("completionMode") != "Indexed":
        fail(f"{path}: quench-calibrate is not an Indexed Job")
    pod = cal["template"]["spec"]
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        fail(f"{path}: a Job's pods need restartPolicy Never or OnFailure")
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    if not (int(cal["completions"]) == int(cal["parallelism"]) == int(env["SHARDS"]) == SHARDS):
        fail(f"{path}: completions {cal['completions']}, parallelism {cal['parallelism']} and SHARDS {env['SHARDS']} must agree")
    script = container["command"]
    if script[:2] != ["/bin/sh", "-c"] or "JOB_COMPLETION_INDEX" not in script[2]:
        fail(f"{path}: the calibrate container must be a /bin/sh -c script using JOB_COMPLETION_INDEX")
    mpod = jobs["quench-merge"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for p in (pod, mpod) for v in p["volumes"]}
    if len(set(volumes.values())) != 1:
        fail(f"{path}: the two Jobs must share one volume claim, found {volumes}")
    mount = container["volumeMounts"][0]["mountPath"]

    # The scripts as a pod would run them, with the volume moved here and quench on PATH.
    vol = os.path.join(work, "k8s_volume")
    bindir = os.path.join(work, "k8s_bin")
    os.makedirs(vol)
    os.makedirs(bindir)
    os.symlink(os.path.abspath(args.quench), os.path.join(bindir, "quench"))
    os.symlink(args.model, os.path.join(vol, "model.onnx"))
    os.symlink(args.data, os.path.join(vol, "calib.npy"))

    def pod_env(c, extra=None):
        e = {"PATH": bindir + ":/usr/bin:/bin", "HOME": work}
        for kv in c.get("env", []):
            # Paths under the mount, alone or after NAME=: moved into the stand-in volume.
            e[kv["name"]] = re.sub(r"(^|[=\s])" + re.escape(mount) + r"(?=/|$|\s)", lambda m: m.group(1) + vol, kv["value"])
        e.update(extra or {})
        return e

    def sh(c, extra=None):
        r = subprocess.run(c["command"], capture_output=True, text=True, timeout=60, env=pod_env(c, extra), cwd=work)
        if r.returncode != 0:
            fail(f"{path}: container {c['name']} {extra or ''} exited {r.returncode}\n{r.stdout}\n{r.stderr}")

    (wait,) = mpod["initContainers"]
    (merge,) = mpod["containers"]
    # The merge Job's init container must wait while shards are missing (here: time out quickly).
    r = subprocess.run(wait["command"], capture_output=True, text=True, timeout=30, env=pod_env(wait, {"WAIT_SECONDS": "2"}))
    if r.returncode == 0:
        fail(f"{path}: wait-for-shards returned before any shard existed")
    for k in range(SHARDS):
        sh(container, {"JOB_COMPLETION_INDEX": str(k), "METHOD": args.method})
    sh(wait)
    sh(merge)
    states = pod_env(merge)["STATES"]
    # The manifest's model is model.onnx, the reference's digits_cnn.onnx: the metadata names differ.
    n = compare("kubernetes", os.path.join(states, "merged.json"), os.path.join(states, "ranges.json"), ref_state, ref_table,
                model_renamed=True)
    print(f"kubernetes: {path} parses as an Indexed Job ({SHARDS} completions) + merge Job; its scripts run with "
          f"JOB_COMPLETION_INDEX 0-{SHARDS - 1}: merged state of {n} tensors identical to one pass, range table byte-identical")


def shield():
    """From here on cleanup runs to its end: no deadline, no signal interrupts it (its own waits are bounded)."""
    signal.alarm(0)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)


def on_signal(signum, frame):
    raise SystemExit(f"FAILED: {'deadline reached' if signum == signal.SIGALRM else signal.Signals(signum).name} "
                     "(cleaning up)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quench", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--method", default="entropy")
    a = ap.parse_args()
    a.quench = os.path.abspath(a.quench)
    a.source_dir = os.path.abspath(a.source_dir)
    a.model = os.path.join(a.source_dir, "examples", "data", "digits", "digits_cnn.onnx")
    a.data = os.path.join(a.source_dir, "examples", "data", "digits", "digits_calib.npy")

    os.environ["PATH"] = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    missing = [t for t in DAEMONS + CLIENTS if not shutil.which(t)]
    if missing:
        print(f"SKIP: slurm-wlm is not installed ({', '.join(missing)} not found; cmake/install-deps.sh test installs it)")
        return SKIP
    plugins = [p for p in PLUGINS if not os.path.exists(os.path.join(PLUGIN_DIR, p + ".so"))]
    if plugins:
        fail(f"slurm-wlm is installed but {PLUGIN_DIR} lacks {', '.join(plugins)}")
    if os.geteuid() != 0:
        print("SKIP: the test cluster runs slurmctld and slurmd as root (SlurmUser=root); run as root")
        return SKIP

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(DEADLINE_SECONDS)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    remove_stale_dirs()
    work = tempfile.mkdtemp(prefix=PREFIX)
    try:
        with open(os.path.join(work, "owner.pid"), "w") as f:
            f.write(str(os.getpid()))
        ref_state, ref_table = os.path.join(work, "one_pass.json"), os.path.join(work, "one_pass_ranges.json")
        run([a.quench, "calibrate", a.model, "--data", f"input={a.data}", "--method", a.method, "-q", "-o",
             os.path.join(work, "one_pass_raw.json")])
        # merge of the single state: the metadata (shard, samples) normalised as merge writes it.
        run([a.quench, "merge", os.path.join(work, "one_pass_raw.json"), "-o", ref_state, "--table", ref_table])
        samples = json.load(open(ref_state))["metadata"]["samples"]
        print(f"one pass: {a.method} over {samples} samples of {os.path.basename(a.data)}")
        kubernetes_run(work, a, ref_state, ref_table)
        slurm_run(work, a, ref_state, ref_table)
    finally:
        shield()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
