#!/usr/bin/env bash
# Regenerates docs/results/applications/ (see docs/results/applications/README.md): apprenticeship learning, contract
# design and robot navigation, with sobirl's own CLI (`sobirl compare`) and the problems' own functions (figures,
# true returns, grid searches).
#
#   OMP_NUM_THREADS=1 nice -n 19 bash docs/results/make_applications.sh                 # every section
#   OMP_NUM_THREADS=1 nice -n 19 bash docs/results/make_applications.sh navigation      # one or more sections:
#                                                                                      #   apprenticeship contract-design navigation
#
# Uses `sobirl` and `python` from PATH (e.g. `source .venv/bin/activate`). The raw run directories go to $RUNS (default
# runs/results-applications-<timestamp>, ignored by git); the tables, figures and resolved configs are copied into
# docs/results/applications/<section>/, and each command's wall and CPU times into <section>/timings.md.
#
# OUT, RUNS, SEEDS, WORKERS and the *_ITERATIONS below may be set in the environment (a quick check of the script:
# OUT=/tmp/check SEEDS=2 APPRENTICESHIP_ITERATIONS=5 CONTRACT_ITERATIONS=5 CONTRACT_SAMPLED_ITERATIONS=5
# NAVIGATION_ITERATIONS=5 NAVIGATION_SAMPLED_ITERATIONS=5); the defaults give the results in docs/results/applications/.
# Each `sobirl compare` command is sized to a few minutes of CPU (see the timings.md files).
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT=${OUT:-docs/results/applications}
RUNS=${RUNS:-runs/results-applications-$(date +%Y%m%d-%H%M%S)}
SEEDS=${SEEDS:-5}
WORKERS=${WORKERS:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# The methods that apply (each method's check_problem): apprenticeship's log-likelihood is neither a leader's value nor
# a sampled objective, so hpgd, sobirl-mf and stoc-sobirl do not apply; contract design and navigation are LeaderValue
# problems, so every method does. The sampling methods (zero-order, hpgd, sobirl-mf, stoc-sobirl) cost 5-50 times more
# per iteration, so they run in a second, shorter comparison, with exact as the common reference.
APPRENTICESHIP_METHODS="exact,m-sobirl,sobirl,itd,zero-order,parl,pbrl"
APPRENTICESHIP_ITERATIONS=${APPRENTICESHIP_ITERATIONS:-100}
MODEL_METHODS="exact,m-sobirl,sobirl,itd,parl,pbrl"
SAMPLED_METHODS="exact,zero-order,hpgd,sobirl-mf,stoc-sobirl"
CONTRACT_ITERATIONS=${CONTRACT_ITERATIONS:-600}
CONTRACT_SAMPLED_ITERATIONS=${CONTRACT_SAMPLED_ITERATIONS:-200}
NAVIGATION_ITERATIONS=${NAVIGATION_ITERATIONS:-300}
NAVIGATION_SAMPLED_ITERATIONS=${NAVIGATION_SAMPLED_ITERATIONS:-100}

SECTIONS="apprenticeship contract-design navigation"
if [ $# -eq 0 ]; then set -- $SECTIONS; fi
for section in "$@"; do
    case $section in
        apprenticeship | contract-design | navigation) ;;
        *) echo "unknown section '$section'; valid: $SECTIONS" >&2; exit 2 ;;
    esac
done
command -v sobirl >/dev/null || { echo "sobirl is not on PATH (source .venv/bin/activate)" >&2; exit 2; }
if [ -e "$RUNS" ]; then echo "$RUNS exists; choose another RUNS=..." >&2; exit 2; fi
mkdir -p "$RUNS"
echo "raw run directories: $RUNS"

# timed SECTION LABEL COMMAND...: runs COMMAND and appends "| LABEL | wall s | CPU s |" to SECTION's timings.md.
timed() {
    local section=$1 label=$2
    shift 2
    local TIMEFORMAT="| $label | %0R | %0U + %0S |"
    { time "$@" 2>&3; } 3>&2 2>>"$OUT/$section/timings.md"
    tail -n 1 "$OUT/$section/timings.md"
}

new_timings() {
    mkdir -p "$OUT/$1"
    printf '| step | wall (s) | CPU: user + system (s) |\n|---|---:|---:|\n' >"$OUT/$1/timings.md"
}

# compare SECTION NAME ITERATIONS METHODS [--set K=V ...]: one `sobirl compare`, its table, figure and config copied
# to SECTION/NAME.md, NAME-objective.png and NAME-config.yaml.
compare() {
    local section=$1 name=$2 iterations=$3 methods=$4
    shift 4
    timed "$section" "sobirl compare ($name)" \
        sobirl compare --problem "$section" "$@" --methods "$methods" --seeds "$SEEDS" --iterations "$iterations" \
        --evaluate-every 10 --workers "$WORKERS" --output-dir "$RUNS/$name" --name "$name"
    local found=("$RUNS/$name"/*/)
    if [ ${#found[@]} -ne 1 ]; then echo "expected one run directory in $RUNS/$name" >&2; exit 1; fi
    cp "${found[0]}results.md" "$OUT/$section/$name.md"
    cp "${found[0]}objective.png" "$OUT/$section/$name-objective.png"
    cp "${found[0]}config.yaml" "$OUT/$section/$name-config.yaml"
}

apprenticeship() {
    new_timings apprenticeship
    # 1. Linear reward (4 cell-type weights), 1000 expert trajectories of 20 steps per seed (the seed draws them).
    compare apprenticeship apprenticeship-linear "$APPRENTICESHIP_ITERATIONS" "$APPRENTICESHIP_METHODS"
    # 2. Tabular reward (400 parameters), the same demonstrations.
    compare apprenticeship apprenticeship-tabular "$APPRENTICESHIP_ITERATIONS" "$APPRENTICESHIP_METHODS" \
        --set reward=tabular
    # 3. The learned reward's true return against the expert's (exact and m-sobirl, every seed), and the figure.
    timed apprenticeship "true returns and figure" python - "$OUT/apprenticeship" "$SEEDS" "$APPRENTICESHIP_ITERATIONS" <<'EOF'
import statistics
import sys

import torch

from sobirl.algorithms import DivergenceError, solve
from sobirl.problems.apprenticeship import apprenticeship, plot_solution, true_return
from sobirl.tabular import hyperobjective

torch.set_num_threads(1)
out, seeds, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = [
    f"True discounted return of the learned reward's soft-optimal follower over the expert's, {iterations} iterations "
    f"from x0 = 0, seeds 0-{seeds - 1} (the seed draws the demonstrations).",
    "",
    "| demonstrations | reward | method | final phi, exact (mean) | return / expert's (mean) | min over seeds |",
    "|---|---|---|---:|---:|---:|",
]
for data, kwargs in (
    ("1000 trajectories x 20 steps", {}),
    ("1000 single pairs (horizon 1)", {"horizon": 1}),
):
    for reward in ("linear", "tabular"):
        for method in ("exact", "m-sobirl"):
            ratios, phis, diverged = [], [], []
            for seed in range(seeds):
                prob = apprenticeship(seed=seed, reward=reward, **kwargs)
                try:
                    result = solve(prob, prob.x0, method, iterations)
                except DivergenceError as err:  # log pi(a|s) of a demonstrated pair underflowed: phi = inf
                    diverged.append(f"seed {seed}: {str(err).split(':')[0]}")
                    continue
                ratios.append(true_return(prob, result.x) / prob.expert_return)
                phis.append(hyperobjective(prob, result.x).item())
                if (seed, method, reward, data) == (0, "exact", "linear", "1000 trajectories x 20 steps"):
                    plot_solution(prob, result.x, f"{out}/apprenticeship-reward.png")
            cells = f"{statistics.fmean(phis):.4f} | {statistics.fmean(ratios):.4f} | {min(ratios):.4f}" if ratios else "- | - | -"
            note = f" ({len(ratios)} seeds; diverged: {', '.join(diverged)})" if diverged else ""
            lines.append(f"| {data} | {reward} | {method}{note} | {cells} |")
with open(f"{out}/true-returns.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
}

contract_design() {
    new_timings contract-design
    # 4. The model-based methods, 600 iterations (m-sobirl needs about 500 to pass the one-parameter contracts).
    compare contract-design contract-design "$CONTRACT_ITERATIONS" "$MODEL_METHODS"
    # 5. The sampling methods, 200 iterations, with exact as the reference.
    compare contract-design contract-design-sampled "$CONTRACT_SAMPLED_ITERATIONS" "$SAMPLED_METHODS"
    # 6. Grid search over the one-parameter contracts against the learned ones (both contract kinds), and the figure.
    timed contract-design "grid search and figure" python - "$OUT/contract-design" "$SEEDS" "$CONTRACT_ITERATIONS" <<'EOF'
import statistics
import sys

import torch

from sobirl.algorithms import solve
from sobirl.problems.contract_design import (
    best_one_parameter_contract,
    contract_design,
    contract_utility,
    plot_solution,
)

torch.set_num_threads(1)
out, seeds, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
levels = torch.linspace(0, 10, 201, dtype=torch.float64)
lines = [
    "Principal's utility U_P (expected discounted value of delivery minus payments) of the best one-parameter "
    "contracts (grid search over the level, 0 to 10 in steps of 0.05) and of the learned contracts "
    f"({iterations} iterations, seeds 0-{seeds - 1}: the seed draws the noise on x0).",
    "",
    "| contract | family or method | best level | U_P (mean over seeds) | min over seeds |",
    "|---|---|---:|---:|---:|",
]
for contract in ("action", "outcome"):
    prob = contract_design(contract=contract)
    for family, name in (("constant", "constant payment on every parameter"), ("bonus", "bonus on delivery only")):
        level, utility = best_one_parameter_contract(prob, levels, family)
        lines.append(f"| {contract} | grid search: {name} | {level:.2f} | {utility:.4f} | {utility:.4f} |")
    for method in ("exact", "m-sobirl"):
        utilities = []
        for seed in range(seeds):
            prob = contract_design(contract=contract, seed=seed)
            result = solve(prob, prob.x0, method, iterations)
            utilities.append(contract_utility(prob, result.x))
            if (seed, method, contract) == (0, "exact", "action"):
                plot_solution(prob, result.x, f"{out}/contract-payments.png")
        lines.append(
            f"| {contract} | learned: {method} | - | {statistics.fmean(utilities):.4f} | {min(utilities):.4f} |"
        )
with open(f"{out}/baselines.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
}

navigation() {
    new_timings navigation
    # 7. The model-based methods, 300 iterations.
    compare navigation navigation "$NAVIGATION_ITERATIONS" "$MODEL_METHODS"
    # 8. The sampling methods, 100 iterations, with exact as the reference.
    compare navigation navigation-sampled "$NAVIGATION_SAMPLED_ITERATIONS" "$SAMPLED_METHODS"
    # 9. What the designer cares about, unshaped and after exact and m-sobirl, and the figure.
    timed navigation "behaviour and figure" python - "$OUT/navigation" "$SEEDS" "$NAVIGATION_ITERATIONS" <<'EOF'
import statistics
import sys

import torch

from sobirl.algorithms import solve
from sobirl.problems.navigation import behaviour, navigation, plot_solution

torch.set_num_threads(1)
out, seeds, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keys = ("designer_value", "hazard_visits", "corridor_visits", "goal", "task_value")
lines = [
    f"The robot's behaviour from the start (discounted; mean over seeds 0-{seeds - 1}, which draw x0 ~ N(0, 0.01^2)): "
    f"unshaped (x0) and after {iterations} iterations of exact and m-sobirl.",
    "",
    "| robot | designer's value | hazard visits | corridor visits | E[gamma^T] at the goal | robot's task value |",
    "|---|---:|---:|---:|---:|---:|",
]
for label, method in (("unshaped (x0)", None), ("shaped by exact", "exact"), ("shaped by m-sobirl", "m-sobirl")):
    stats = []
    for seed in range(seeds):
        prob = navigation(seed=seed)
        x = prob.x0 if method is None else solve(prob, prob.x0, method, iterations).x
        stats.append(behaviour(prob, x))
        if (seed, method) == (0, "exact"):
            plot_solution(prob, x, f"{out}/navigation-shaping.png")
    lines.append(f"| {label} | " + " | ".join(f"{statistics.fmean(s[k] for s in stats):.4f}" for k in keys) + " |")
with open(f"{out}/behaviour.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
}

for section in "$@"; do
    case $section in
        apprenticeship) apprenticeship ;;
        contract-design) contract_design ;;
        navigation) navigation ;;
    esac
done
{
    echo "$(sobirl --version) (sobirl --version)"
    cfg=$(find "$RUNS" -name config.yaml -print -quit)
    awk '/^versions:/ { on = 1; next } on && /^  / { sub(/^  /, ""); print; next } on { exit }' "$cfg"
} >"$OUT/versions.txt"
echo "done: $OUT (raw runs in $RUNS)"
