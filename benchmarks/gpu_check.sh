#!/usr/bin/env bash
# The CUDA path, by hand, in about ten minutes on one H100: what no CPU machine can prove.
# Run it from the repository root, in the environment that holds the CUDA build of torch
# (after `pip install -e .`):
#
#     bash benchmarks/gpu_check.sh              # GPU_CHECK_STEPS=60 by default
#
# Every stage judges against ONE check-only baseline: the full profile's model and data,
# shortened to GPU_CHECK_STEPS steps with no convergence floor. It is recorded once here,
# lives in the scratch folder, and is never a reference baseline (do not ship it).
# Stages: time one run (and print the estimate), preflight, the gpu-marked tests, record the
# check baseline, verify against it twice (IDENTICAL, and repeats that agree), the self-test's
# GPU rows. With two or more GPUs: a 2-rank DDP rerun (IDENTICAL), --per-device on two GPUs,
# a hung rank that NCCL's watchdog must end within its timeout with the named sentence, and a
# corrupted all-reduce that preflight must catch.
#
# Everything goes to one scratch folder (printed first; keep it: baseline, reports, timings).
# Exit status: 0 when every stage passed, 1 otherwise.
set -uo pipefail

python -c '
import sys, torch
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) at {torch.__file__}")
if not torch.cuda.is_available():
    sys.exit("gpu_check: this torch sees no CUDA GPU; run it on a GPU machine, in the environment that holds its CUDA build of torch.")
for i in range(torch.cuda.device_count()):
    print(f"GPU {i}: {torch.cuda.get_device_name(i)}")
' || exit 1
gpus=$(python -c 'import torch; print(torch.cuda.device_count())')

scratch=$(mktemp -d -t repro-gpu-check-XXXXXX)
export REPRO_HOME="$scratch"  # runs and baselines of every stage go here
steps=${GPU_CHECK_STEPS:-60}
profile="$scratch/gpu-check.yaml"
baselines="$scratch/baselines"
timings="$scratch/timings.txt"
echo "scratch folder: $scratch"
python - "$profile" "$steps" <<'EOF'
import sys
from pathlib import Path

import yaml

from repro.profile import profile_source

data, _ = profile_source("full")
steps = int(sys.argv[2])
data.update(
    name="gpu-check",
    description=f"CHECK ONLY: the full profile shortened to {steps} steps; never a reference",
    steps=steps,
    warmup_steps=min(10, steps // 4),
    converged_accuracy=0.0,  # a shortened training does not converge; nothing here judges that
)
Path(sys.argv[1]).write_text(yaml.safe_dump(data, sort_keys=False))
EOF
[ -f "$profile" ] || { echo "gpu_check: could not write the check profile"; exit 1; }
failed=()
passed=()
cant=()

stage() {  # stage NAME: prints a header; the caller times and judges the commands
    echo
    echo "== $1 ($(date +%T))"
    SECONDS=0
}

done_stage() {  # done_stage NAME PASSED(true|false)
    echo "$1: ${SECONDS} s" >>"$timings"
    if $2; then echo "-- $1: passed in ${SECONDS} s"; passed+=("$1");
    else echo "-- $1: FAILED in ${SECONDS} s"; failed+=("$1"); fi
}

ok() { [ "$1" = 0 ] && echo true || echo false; }  # ok EXIT_CODE
verdict_of() { python -c 'import json, sys; print(json.load(open(sys.argv[1]))["verdict"])' "$1" 2>/dev/null; }

stage "one run of the check profile (timed)"
python -m repro run --profile "$profile" --quiet
code=$?
one=$SECONDS
runs=$(( 16 + 3 + 5 + (gpus >= 2 ? 6 : 0) ))  # baseline 16, verify 3, self-test rows ~5, multi-GPU 6
echo "one run: ${one} s; this check makes about ${runs} more: roughly $(( runs * one / 60 + 2 )) min with the tests"
done_stage "one timed run" "$(ok $code)"

stage "preflight (NVML health of this job's GPUs, an NCCL all-reduce sweep; exit 5 is UNFIT)"
python -m repro preflight --profile "$profile" --json >"$scratch/preflight.json"
code=$?
python - "$scratch/preflight.json" <<'EOF'
import json, sys

for check in json.load(open(sys.argv[1]))["checks"]:
    print(f"  {check['status']:5} {check['name']}: {check['value']} {check['reason']}")
EOF
done_stage "preflight" "$(ok $code)"

stage "gpu-marked tests"
python -m pytest -q -p no:cacheprovider -m gpu tests
code=$?
done_stage "gpu-marked tests" "$(ok $code)"

stage "record the check baseline (8 numerics members, 8 seeds)"
python -m repro baseline record --profile "$profile" --numerics 8 --seeds 8 \
    --baseline-dir "$baselines" --name gpu-check --quiet
code=$?
done_stage "record the check baseline" "$(ok $code)"

stage "verify against it: IDENTICAL"
python -m repro verify --profile "$profile" --baseline-dir "$baselines" --no-preflight --quiet \
    --json --md "$scratch/verify.md" >"$scratch/verify.json"
code=$?
verdict=$(verdict_of "$scratch/verify.json")
echo "verdict: ${verdict:-unreadable} (exit $code); report: $scratch/verify.md"
done_stage "verify IDENTICAL" "$([ $code = 0 ] && [ "$verdict" = IDENTICAL ] && echo true || echo false)"

stage "a rerun, twice: the repeats agree and stay IDENTICAL"
python -m repro verify --profile "$profile" --baseline-dir "$baselines" --no-preflight --quiet \
    --repeat 2 --json >"$scratch/rerun.json"
code=$?
verdict=$(verdict_of "$scratch/rerun.json")
echo "verdict: ${verdict:-unreadable} (exit $code)"
done_stage "rerun IDENTICAL" "$([ $code = 0 ] && [ "$verdict" = IDENTICAL ] && echo true || echo false)"

stage "self-test, GPU rows, against the check baseline"
python - "$profile" "$scratch/selftest" "$baselines/gpu-check" <<'EOF'
import sys
from pathlib import Path

from repro.baselines.selftest import load_cases, render_table, run_cases, run_session

cases = [case for case in load_cases("full") if case.gpu]
session = run_session(
    sys.argv[1], cases, workdir=Path(sys.argv[2]), cuda=True, baseline=Path(sys.argv[3])
)
results = run_cases(session, cases)
print(render_table(results))
sys.exit(0 if all(r.passed and r.comparison is not None for r in results) else 1)
EOF
code=$?
done_stage "self-test GPU rows" "$(ok $code)"

if [ "$gpus" -ge 2 ]; then
    stage "2-rank DDP over NCCL, run twice: IDENTICAL"
    first="$scratch/ddp-a" second="$scratch/ddp-b"
    python -m repro run --profile "$profile" --set world_size=2 --runs-dir "$first" --quiet &&
        python -m repro run --profile "$profile" --set world_size=2 --runs-dir "$second" --quiet
    code=$?
    if [ $code = 0 ]; then
        python -m repro compare "$first"/*/ "$second"/*/ --json >"$scratch/ddp.json"
        code=$?
    fi
    verdict=$(verdict_of "$scratch/ddp.json")
    echo "verdict: ${verdict:-unreadable} (exit $code)"
    done_stage "2-rank DDP rerun IDENTICAL" "$([ "$verdict" = IDENTICAL ] && echo true || echo false)"

    stage "--per-device on GPUs 0 and 1"
    CUDA_VISIBLE_DEVICES=0,1 python -m repro verify --profile "$profile" --per-device \
        --baseline-dir "$baselines" --no-preflight --quiet --json >"$scratch/per-device.json"
    code=$?
    echo "exit $code; report: $scratch/per-device.json"
    done_stage "--per-device on two GPUs" "$(ok $code)"

    stage "a hung rank: NCCL's watchdog ends it within the timeout, and the report names it"
    started=$SECONDS
    python -m repro run --profile "$profile" --set world_size=2 --set fault.hang_step=5 \
        --set collective_timeout_s=60 --runs-dir "$scratch/hang" --quiet \
        2>"$scratch/hang.err"
    code=$?
    took=$(( SECONDS - started ))
    reason=$(python -c 'import sys, yaml, glob; print(yaml.safe_load(open(glob.glob(sys.argv[1] + "/*/status.yaml")[0])).get("reason", ""))' "$scratch/hang" 2>/dev/null)
    echo "exit $code after ${took} s: $reason"
    done_stage "hung rank named" "$([ $code = 4 ] && [ $took -lt 240 ] && [[ "$reason" == *"did not join the collective"* ]] && echo true || echo false)"

    stage "a corrupted all-reduce: preflight must call the machine UNFIT"
    python - <<'EOF'
import sys

from repro.preflight.run import run_preflight

found = run_preflight(ranks=2, threads=1, device="cuda", corrupt_collective=True)
wrong = [c for c in found.checks if c.name == "collective.allreduce.bytes" and c.status == "fail"]
print("\n".join(f"  {c.name}: {c.reason}" for c in wrong) or "  nothing caught")
sys.exit(0 if wrong else 1)
EOF
    code=$?
    done_stage "corrupted all-reduce caught" "$(ok $code)"
else
    cant+=("multi-GPU stages (2-rank DDP, --per-device, hung rank, corrupted all-reduce): one GPU visible")
fi

echo
echo "timings (also in $timings):"
cat "$timings"
echo
for item in "${passed[@]}"; do echo "proved: $item"; done
for item in "${cant[@]}"; do echo "not proved here: $item"; done
if [ ${#failed[@]} -eq 0 ]; then
    echo "gpu_check: every stage passed (files in $scratch)"
else
    echo "gpu_check: FAILED: ${failed[*]} (files in $scratch)"
    exit 1
fi
