#!/usr/bin/env bash
# The CUDA path on one GPU, by hand: the gpu-marked tests, a full-profile baseline recorded
# and then verified IDENTICAL, and the self-test's GPU rows. Meant to take about 10 minutes
# on one H200; each stage prints its duration. Run it from the repository root, in the
# environment that holds the CUDA build of torch (after `pip install -e .`):
#
#     bash benchmarks/gpu_check.sh
#
# Everything it writes goes to a fresh scratch folder (REPRO_HOME), never into the checkout.
# Exit status: 0 when every stage passed, 1 otherwise.
set -uo pipefail

python -c '
import sys, torch
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) at {torch.__file__}")
if not torch.cuda.is_available():
    sys.exit("gpu_check: this torch sees no CUDA GPU; run it on a GPU machine, in the environment that holds its CUDA build of torch.")
print(f"GPU 0: {torch.cuda.get_device_name(0)}")
' || exit 1

scratch=$(mktemp -d -t repro-gpu-check-XXXXXX)
export REPRO_HOME="$scratch"  # runs and baselines of every stage go here
echo "scratch folder: $scratch"
failed=()

stage() {  # stage NAME: prints a header; the caller times and judges the commands
    echo
    echo "== $1 ($(date +%T))"
    SECONDS=0
}

done_stage() {  # done_stage NAME PASSED(true|false)
    if $2; then echo "-- $1: passed in ${SECONDS} s"; else echo "-- $1: FAILED in ${SECONDS} s"; failed+=("$1"); fi
}

ok() { [ "$1" = 0 ] && echo true || echo false; }  # ok EXIT_CODE

stage "preflight (NVML health checks, an NCCL all-reduce sweep; exit 5 is UNFIT)"
python -m repro preflight
code=$?
done_stage "preflight" "$(ok $code)"

stage "gpu-marked tests"
python -m pytest -q -p no:cacheprovider -m gpu tests
code=$?
done_stage "gpu-marked tests" "$(ok $code)"

stage "verify --record-missing (no baseline yet: records one, NO_BASELINE, exit 3)"
python -m repro verify --profile full --record-missing --baseline-dir "$scratch/baselines" --quiet
code=$?
ls -d "$scratch"/baselines/*/ 2>/dev/null
# 0 too: a shipped baseline for this GPU already matched, and the next stage verifies against it.
done_stage "record a baseline" "$([ $code = 3 ] || [ $code = 0 ] && echo true || echo false)"

stage "verify again against it (IDENTICAL, exit 0)"
python -m repro verify --profile full --baseline-dir "$scratch/baselines" --quiet --json \
    >"$scratch/second.json"
code=$?
verdict=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["verdict"])' \
    "$scratch/second.json" 2>/dev/null)
echo "verdict: ${verdict:-unreadable} (exit $code); the report is in $scratch/second.json"
done_stage "verify IDENTICAL" "$([ $code = 0 ] && [ "$verdict" = IDENTICAL ] && echo true || echo false)"

stage "self-test, GPU rows (full profile)"
# `repro selftest` runs the CPU rows too; this runs its GPU rows alone, the same way.
python - "$scratch/selftest" <<'EOF'
import sys
from pathlib import Path

from repro.selftest import load_cases, render_table, run_cases, run_session

cases = [case for case in load_cases("full") if case.gpu]
session = run_session("full", cases, workdir=Path(sys.argv[1]), cuda=True)
results = run_cases(session, cases)
print(render_table(results))
sys.exit(0 if all(r.passed and r.comparison is not None for r in results) else 1)
EOF
code=$?
done_stage "self-test GPU rows" "$(ok $code)"

echo
if [ ${#failed[@]} -eq 0 ]; then
    echo "gpu_check: every stage passed (files in $scratch)"
else
    echo "gpu_check: FAILED: ${failed[*]} (files in $scratch)"
    exit 1
fi
