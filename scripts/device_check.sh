#!/usr/bin/env bash
# Issue 11's checks on a lent GPU machine, in one run (the device tool; its README has the limits:
# 15 minutes of device time per session, 10 per command, Python 3.12 with torch there).
#
#   here:   bash scripts/device_check.sh wheels   # .whl/ (git-ignored): what the device image lacks
#   there:  bash scripts/device_check.sh run      # install, tests, gpu_scale on CUDA, all CPU cores
#
# e.g. run(command="bash scripts/device_check.sh run", carry=[".whl"], timeout_s=600).
# Each step writes its output to $OUT/<step>.log (the device tool's folder that comes back;
# runs/device elsewhere) and one line to $OUT/summary.txt, and is stopped at its own limit, so the
# run ends inside 9 minutes whatever fails. SHAPES (default "roberta-large gpt2-medium") narrows the
# benchmark, e.g. SHAPES=minilm to try the script on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/device}
SHAPES=${SHAPES:-roberta-large gpt2-medium}

step() {  # NAME SECONDS COMMAND...
    local name=$1 limit=$2 start=$SECONDS status
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    status=$?
    echo "$name: exit $status after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

case "${1:-}" in
    wheels)  # aihwkit 1.1.0 for CPython 3.12; the image has torch, transformers, peft and the rest
        grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
        python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl aihwkit==1.1.0
        ;;
    run)
        mkdir -p "$OUT"
        : > "$OUT/summary.txt"
        if compgen -G ".whl/*.whl" > /dev/null; then
            python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
        fi
        export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
        step install 60 python3 -m pip install --no-deps --no-build-isolation --no-index -e .
        step env 30 python3 -c "import os, torch; from imc_sim.crossbar import epilogue; \
print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0), os.cpu_count(), \
'cores; compiled periphery pass:', epilogue.AVAILABLE)"
        step tests 120 python3 -m pytest -q -x -p no:cacheprovider tests/test_second_device.py \
            tests/test_fake_cuda_deploy.py tests/test_training_devices.py tests/test_mixed_precision.py
        for shape in $SHAPES; do
            step "gpu_$shape" 180 python3 benchmarks/gpu_scale.py --shape "$shape" --torch-device cuda \
                --out "$OUT/gpu_scale_${shape}_cuda.json"
        done
        first=${SHAPES%% *}
        step "cpu_$first" 90 python3 benchmarks/gpu_scale.py --shape "$first" --torch-device cpu \
            --batches 2 --seeds 1 --times 1d --repeats 2 --steps 0 --skip-aihwkit \
            --out "$OUT/gpu_scale_${first}_cpu$(nproc).json"
        ;;
    *)
        echo "usage: bash scripts/device_check.sh wheels|run" >&2
        exit 2
        ;;
esac
