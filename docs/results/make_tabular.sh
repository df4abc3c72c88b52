#!/usr/bin/env bash
# Regenerates the tabular results of docs/results/ (see docs/results/README.md) with sobirl's own CLI.
#
#   OMP_NUM_THREADS=1 nice -n 19 bash docs/results/make_tabular.sh                 # every section
#   OMP_NUM_THREADS=1 nice -n 19 bash docs/results/make_tabular.sh four-rooms      # one or more sections:
#                                                                                 #   synthetic four-rooms estimators
#
# Uses `sobirl` from PATH (e.g. `source .venv/bin/activate`). The raw run directories (metrics CSVs, TensorBoard,
# per-run plots) go to $RUNS (default runs/results-tabular-<timestamp>, ignored by git); the tables, figures and
# resolved configs that the report cites are copied into docs/results/<section>/, and each section's wall and CPU
# times into docs/results/<section>/timings.md.
#
# OUT, SEEDS, SYNTHETIC_ITERATIONS and FOUR_ROOMS_ITERATIONS may be set in the environment (e.g. for a quick check
# of the script: OUT=/tmp/check SEEDS=2 SYNTHETIC_ITERATIONS=20 FOUR_ROOMS_ITERATIONS=10); the defaults give the
# results in docs/results/.
#
# The times below are the wall times measured for docs/results/ on a 2-core machine at nice 19 while other jobs held
# one to two of the cores busy (so the 2 worker processes of each compare/estimators command, one torch thread each,
# shared about one core): about 28 min in all (23 min of CPU). On an idle 2-core machine expect less.
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT=${OUT:-docs/results}
RUNS=${RUNS:-runs/results-tabular-$(date +%Y%m%d-%H%M%S)}
SEEDS=${SEEDS:-5}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# The paper's synthetic problem (RandMDP, S=10, A=5, n=100, gamma=0.5, tau=1, beta=8e-3, M-SoBiRL's zeta=0.5):
# the SoBiRL methods first, then the exact reference and every baseline that applies to it (hpgd, sobirl-mf and
# stoc-sobirl need a leader-value or sampled objective, which RandMDP does not have).
SYNTHETIC_METHODS="m-sobirl sobirl exact itd zero-order parl pbrl"
SYNTHETIC_ITERATIONS=${SYNTHETIC_ITERATIONS:-1000}
# Four rooms (lam=0.003, c=1; the problem's own beta=2, clip=1 for every method): every method of sobirl.
FOUR_ROOMS_METHODS="m-sobirl,sobirl,sobirl-mf,stoc-sobirl,exact,itd,zero-order,parl,pbrl,hpgd"
FOUR_ROOMS_ITERATIONS=${FOUR_ROOMS_ITERATIONS:-200}

if [ $# -eq 0 ]; then set -- synthetic four-rooms estimators; fi
for section in "$@"; do
    case $section in
        synthetic | four-rooms | estimators) ;;
        *) echo "unknown section '$section'; valid: synthetic four-rooms estimators" >&2; exit 2 ;;
    esac
done
command -v sobirl >/dev/null || { echo "sobirl is not on PATH (source .venv/bin/activate)" >&2; exit 2; }
if [ -e "$RUNS" ]; then echo "$RUNS exists; choose another RUNS=..." >&2; exit 2; fi
mkdir -p "$RUNS"
echo "raw run directories: $RUNS"

# timed SECTION LABEL COMMAND...: runs COMMAND and appends "| LABEL | wall s | CPU s |" to SECTION's timings.md
# (CPU: user + system time of the command and its worker processes).
timed() {
    local section=$1 label=$2
    shift 2
    local TIMEFORMAT="| $label | %0R | %0U + %0S |"
    { time "$@" 2>&3; } 3>&2 2>>"$OUT/$section/timings.md"
    tail -n 1 "$OUT/$section/timings.md"
}

# new_timings SECTION: starts SECTION's timings.md.
new_timings() {
    mkdir -p "$OUT/$1"
    printf '| step | wall (s) | CPU: user + system (s) |\n|---|---:|---:|\n' >"$OUT/$1/timings.md"
}

# only_dir DIR: the single run directory that one command created under DIR.
only_dir() {
    local found=("$1"/*/)
    if [ ${#found[@]} -ne 1 ]; then echo "expected one run directory in $1, found ${#found[@]}" >&2; exit 1; fi
    echo "${found[0]%/}"
}

synthetic() {
    new_timings synthetic
    # 1. `sobirl synthetic`: 7 methods x 5 seeds (the seed draws the MDP, M, x0 and a stochastic method's noise),
    #    1000 iterations each, one run directory per run. About 4 min (per run: zero-order ~17 s, parl and pbrl
    #    ~9 s, the others ~4 s, of which ~2 s are start-up).
    local method seed
    for method in $SYNTHETIC_METHODS; do
        for seed in $(seq 0 $((SEEDS - 1))); do
            timed synthetic "sobirl synthetic --method $method --seed $seed" \
                sobirl synthetic --method "$method" --seed "$seed" --iterations "$SYNTHETIC_ITERATIONS" \
                --no-progress --output-dir "$RUNS/synthetic"
        done
    done
    # 2. `sobirl plot`: mean +/- s.e. over the 5 seeds of the optimality gap f - f* (f* = S/(2A) = 1) and |grad phi|
    #    against the iteration: all methods (all-convergence.png), and the SoBiRL methods with the exact reference
    #    (sobirl-convergence.png); PNG and PDF. A few seconds each.
    timed synthetic "sobirl plot (all methods)" \
        sobirl plot "$RUNS"/synthetic/synthetic-*-seed*-*/ --output "$OUT/synthetic" --name all
    timed synthetic "sobirl plot (m-sobirl, sobirl, exact)" \
        sobirl plot "$RUNS"/synthetic/synthetic-{m-sobirl,sobirl,exact}-seed*-*/ --output "$OUT/synthetic" --name sobirl
    # 3. The final numbers of every run, as `sobirl synthetic` wrote them in its summary.yaml (exact f, f - f*,
    #    |grad phi| at the last iterate, wall time of the method): per-seed.md. Instant.
    {
        echo "| method | seed | final f | f - f* | final \|grad phi\| | wall time (s) |"
        echo "|---|---:|---:|---:|---:|---:|"
        for method in $SYNTHETIC_METHODS; do
            for seed in $(seq 0 $((SEEDS - 1))); do
                awk -F': ' -v method="$method" -v seed="$seed" '{ v[$1] = $2 } END {
                    printf "| %s | %s | %.10g | %.3g | %.3g | %.1f |\n", method, seed, v["objective"],
                        v["optimality_gap"], v["grad_norm"], v["wall_time_s"] }' \
                    "$RUNS"/synthetic/synthetic-"$method"-seed"$seed"-*/summary.yaml
            done
        done
    } >"$OUT/synthetic/per-seed.md"
    # 4. `sobirl compare` on the same problem, methods, seeds and iterations: the table of the final exact objective
    #    (mean +/- s.e. over seeds), |grad phi|, work counters and wall time (results.md), and its own figure of the
    #    exact objective against iteration and wall time (objective.png). About 2.5 min.
    timed synthetic "sobirl compare --problem random-mdp" \
        sobirl compare --problem random-mdp --methods "${SYNTHETIC_METHODS// /,}" --seeds "$SEEDS" \
        --iterations "$SYNTHETIC_ITERATIONS" --evaluate-every 50 --workers 2 --output-dir "$RUNS/compare-random-mdp"
    local run
    run=$(only_dir "$RUNS/compare-random-mdp")
    cp "$run/results.md" "$OUT/synthetic/compare.md"
    cp "$run/objective.png" "$OUT/synthetic/compare-objective.png"
    cp "$run/config.yaml" "$OUT/synthetic/compare-config.yaml"
    # The resolved config of one synthetic run (the others differ in method, seed and paths only).
    cp "$RUNS"/synthetic/synthetic-m-sobirl-seed0-*/config.yaml "$OUT/synthetic/m-sobirl-seed0-config.yaml"
}

four_rooms() {
    new_timings four-rooms
    # 5. `sobirl compare` on four rooms: 10 methods x 5 seeds x 200 iterations, exact phi every 10 iterations
    #    (only zero-order, hpgd, sobirl-mf and stoc-sobirl draw random numbers; the deterministic methods give the
    #    same trajectory on every seed). About 11 min (parl, sobirl-mf and zero-order take most of it).
    timed four-rooms "sobirl compare --problem four-rooms" \
        sobirl compare --problem four-rooms --set lam=0.003 --set c=1 --methods "$FOUR_ROOMS_METHODS" \
        --seeds "$SEEDS" --iterations "$FOUR_ROOMS_ITERATIONS" --evaluate-every 10 --workers 2 \
        --output-dir "$RUNS/compare-four-rooms"
    local run
    run=$(only_dir "$RUNS/compare-four-rooms")
    cp "$run/results.md" "$OUT/four-rooms/results.md"
    cp "$run/objective.png" "$OUT/four-rooms/objective.png"
    cp "$run/config.yaml" "$OUT/four-rooms/config.yaml"
    # `sobirl plot` of the compare directory: exact objective and |grad phi| (log axis), mean +/- s.e. over seeds.
    timed four-rooms "sobirl plot (compare directory)" \
        sobirl plot "$run" --output "$OUT/four-rooms" --name four-rooms
}

estimators() {
    new_timings estimators
    local name run
    # 6. `sobirl estimators --problem four-rooms`, batches 10 to 10^4 trajectories (10^5 is left out: it alone takes
    #    about an hour on 2 cores), the default seeds per batch (200, 200, 200, 50; monte-carlo 240). About 4 min.
    # 7. `sobirl estimators --problem tabular-rlhf`, the full default study (batches 10 to 10^5 preference pairs) at
    #    x0, where the exploration term vanishes. About 2.5 min.
    # 8. The same at x0 + N(0, I), where it does not, with monte-carlo on the default seeds of the other estimators.
    #    About 4 min.
    # 9. The deep RLHF rules on the long-credit tabular instance (sobirl.experiments.deep_bridge.LONG_CREDIT) at
    #    x = r_true, against 10^6 reference pairs, 64 estimates per row. About 14 min on 2 busy cores.
    # Each writes results.md, results.csv, bias.png, std.png, cosine.png and config.yaml.
    for name in four-rooms tabular-rlhf tabular-rlhf-x1 deep-long-credit; do
        case $name in
            four-rooms) set -- --problem four-rooms --batches 10,100,1000,10000 ;;
            tabular-rlhf) set -- --problem tabular-rlhf ;;
            tabular-rlhf-x1)
                set -- --problem tabular-rlhf --x-scale 1 --estimator-seeds monte-carlo=200,200,200,50,20 ;;
            deep-long-credit)
                set -- --problem tabular-rlhf --set S=8 --set A=3 --set H=15 --set gamma=0.95 --set tau=1.0 \
                    --set state_reward=1.0 --set action_reward=0.1 --set successors=1 --at truth --batches 1000,10000 \
                    --seeds 64 --estimators critic,one-step,deep:drlhf,deep:sobirl/one-step,deep:sobirl/monte-carlo,deep:hpgd,deep:sobirl/successor-features ;;
        esac
        timed estimators "sobirl estimators $*" \
            sobirl estimators "$@" --workers 2 --output-dir "$RUNS/estimators-$name"
        run=$(only_dir "$RUNS/estimators-$name")
        mkdir -p "$OUT/estimators/$name"
        cp "$run"/{results.md,results.csv,bias.png,std.png,cosine.png,config.yaml} "$OUT/estimators/$name/"
    done
}

for section in "$@"; do
    case $section in
        synthetic) synthetic ;;
        four-rooms) four_rooms ;;
        estimators) estimators ;;
    esac
done
# Software versions: sobirl's own, and those a run recorded in its config.yaml.
{
    echo "$(sobirl --version) (sobirl --version)"
    cfg=$(find "$RUNS" -name config.yaml -print -quit)
    awk '/^versions:/ { on = 1; next } on && /^  / { sub(/^  /, ""); print; next } on { exit }' "$cfg"
} >"$OUT/versions.txt"
echo "done: $OUT (raw runs in $RUNS)"
