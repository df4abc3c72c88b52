#!/usr/bin/env bash
# Regenerates the deep-RLHF results of docs/results/ (see docs/results/README.md) with sobirl's own CLI.
#
#   bash docs/results/make_rlhf.sh                      # every section
#   bash docs/results/make_rlhf.sh cartpole halfcheetah # one or more sections: pendulum cartpole halfcheetah pendulum-150
#
# Each section is one `sobirl sweep` (WORKERS trials side by side, one torch thread each) into $RUNS/<section>,
# then `sobirl report --complete-only` into docs/results/<section>/ (report.md with its table and figures over the
# complete trials, figures/, a copy of sweep.yaml, each complete trial's config.yaml and metrics.csv in trials/) and
# the wall and CPU times of each invocation into docs/results/<section>/timings.md. RUNS (default runs/results-rlhf, ignored by git) is fixed, not timestamped: run
# the same command again after an interruption and each sweep skips its complete trials and resumes the others from
# their checkpoints. The report is written even when the sweep stops early (a trial failed for good, or the
# `sobirl sweep` process was stopped; Ctrl-C stops this script too), and the complete trials in
# docs/results/<section>/trials/ are copied back into a RUNS without them, so on another machine the sweep runs only
# the trials still missing.
#
# OUT, RUNS, SEEDS (default 5), HALFCHEETAH_SEEDS (default 3), WORKERS (default 2) and SET (KEY=VALUE overrides for
# every trial, after the section's own, e.g. a quick check of the script: OUT=/tmp/check RUNS=/tmp/check-runs
# SEEDS=1 SET="total_steps=2000 eval_interval=1000 checkpoint_interval=1000") may be set in the environment.
# Sizes on a 2-core machine, one trial per core: pendulum 6 algorithms x 5 seeds of 30k agent steps (775-1048 s per
# trial, 2 workers and nothing else running: 3.8 h); cartpole 6 x 5 of 50k steps (704-909 s per
# trial, 2 workers and nothing else running: 3.5 h); halfcheetah sobirl and drlhf x 3 seeds (HALFCHEETAH_SEEDS) of
# 50k steps, half the config's 100k (about 14 min per trial; with WORKERS=1, beside one other run, the section took
# 87 min; needs `pip install -e ".[mujoco]"`); pendulum-150 the faithful sobirl against drlhf and sac-true-reward on
# paired seeds with a label-starved budget (150 pairs, 50 at the first update), 3 x 5 trials of 30k steps.
# The pendulum, cartpole and halfcheetah sections were measured with the former patched sobirl (commit d4488e8): the
# kept sobirl, stoc-sobirl and hpgd configs name its removed settings, so those sections reproduce at that commit.
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT=${OUT:-docs/results}
RUNS=${RUNS:-runs/results-rlhf}
SEEDS=${SEEDS:-5}
HALFCHEETAH_SEEDS=${HALFCHEETAH_SEEDS:-3}
WORKERS=${WORKERS:-2}
export OMP_NUM_THREADS=1
ALL_ALGOS=sobirl,drlhf,stoc-sobirl,hpgd,pbrl,sac-true-reward
OVERRIDES=()
for pair in ${SET:-}; do OVERRIDES+=(--set "$pair"); done

if [ $# -eq 0 ]; then set -- pendulum cartpole halfcheetah pendulum-150; fi
for section in "$@"; do
    case $section in
        pendulum | cartpole | halfcheetah | pendulum-150) ;;
        *) echo "unknown section '$section'; valid: pendulum cartpole halfcheetah pendulum-150" >&2; exit 2 ;;
    esac
done
command -v sobirl >/dev/null || { echo "sobirl is not on PATH (source .venv/bin/activate)" >&2; exit 2; }
echo "raw run directories: $RUNS"

# restore SECTION: the complete trials kept beside the section's report go back into its sweep directory where that
# lacks them (sobirl sweep counts a trial directory with its config.yaml and complete metrics.csv as done).
restore() {
    local kept=$OUT/$1/trials trial
    [ -d "$kept" ] || return 0
    mkdir -p "$RUNS/$1"
    for trial in "$kept"/*/; do
        [ -e "$RUNS/$1/$(basename "$trial")" ] || cp -r "$trial" "$RUNS/$1/"
    done
}

# timed STEP STATUS_VAR COMMAND...: run COMMAND, append "| STEP | wall | CPU |" to $timings (CPU: user + system time of
# the command and the worker processes it waited for, so not counted for a command stopped by a signal); its exit
# status goes into STATUS_VAR.
timed() {
    local step=$1 status_var=$2 times wall user sys code=0
    shift 2
    times=$(mktemp)
    local TIMEFORMAT="time: %0R %0U %0S"
    { time "$@" 2>&3; } 3>&2 2>"$times" || code=$?
    # only the time line: the shell also reports a command it saw killed ("Terminated") on that stream
    read -r _ wall user sys < <(grep '^time: ' "$times")
    rm -f "$times"
    if [ "$code" -gt 128 ]; then
        echo "| $step (stopped by signal $((code - 128))) | $wall | not counted: its workers were stopped |" >>"$timings"
    else
        echo "| $step | $wall | $user + $sys |" >>"$timings"
    fi
    printf -v "$status_var" '%s' "$code"
}

# sweep SECTION CONFIG ALGOS SEEDS [--set KEY=VALUE ...]: the section's sweep and report, each invocation timed into
# its timings.md; returns the sweep's status.
sweep() {
    local section=$1 config=$2 algos=$3 seeds=$4 status=0 report_status=0
    shift 4
    mkdir -p "$OUT/$section"
    local timings=$OUT/$section/timings.md
    [ -e "$timings" ] || printf '| step | wall (s) | CPU: user + system (s) |\n|---|---:|---:|\n' >"$timings"
    restore "$section"
    timed "sobirl sweep $config" status sobirl sweep "$config" --algos "$algos" --seeds "$seeds" --workers "$WORKERS" \
        --set threads=1 "$@" "${OVERRIDES[@]}" --output-dir "$RUNS" --name "$section" --no-progress
    timed "sobirl report" report_status \
        sobirl report "$RUNS/$section" --output "$OUT/$section/report.md" --complete-only
    cat "$timings"
    [ "$report_status" -eq 0 ] || return "$report_status"
    return "$status"
}

for section in "$@"; do
    case $section in
        pendulum) sweep pendulum configs/pendulum-cpu.yaml "$ALL_ALGOS" "$SEEDS" ;;
        cartpole) sweep cartpole configs/cartpole-cpu.yaml "$ALL_ALGOS" "$SEEDS" ;;
        halfcheetah)
            sweep halfcheetah configs/halfcheetah-cpu.yaml sobirl,drlhf "$HALFCHEETAH_SEEDS" --set total_steps=50000
            ;;
        pendulum-150)
            sweep pendulum-150 configs/pendulum-cpu.yaml sobirl,drlhf,sac-true-reward "$SEEDS" \
                --set total_pairs=150 --set initial_pairs=50
            ;;
    esac
done
