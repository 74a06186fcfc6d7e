#!/usr/bin/env bash
# Builds the separate virtual environment that benchmarks/bench_dictionaries.py runs its peers in:
# SAELens (sae-lens) and EleutherAI's sparsify (published as eai-sparsify; the distribution
# named "sparsify" is an unrelated project), beside the CPU build of torch that topo_mi uses.
#
#   bash benchmarks/benchvenv_dictionaries.sh [VENV]
#
# VENV: the first argument, else $TOPO_MI_BENCH_VENV, else ../benchvenv-dictionaries beside the
# repository (the benchmark's default). Safe to run again: a step already done is skipped.
# A peer that cannot be installed beside the pinned torch is reported and the other is still
# installed; the exit status is 1 only when neither peer could be installed.
#
# Overridable versions: SAE_LENS_VERSION (default 6.54.12), EAI_SPARSIFY_VERSION (default 1.3.3);
# an empty value installs the newest release that fits the pinned torch.
set -u

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${TOPO_MI_BENCH_VENV:-$(dirname "$REPO")/benchvenv-dictionaries}}"
PY="${PYTHON:-python3}"
SAE_LENS_VERSION="${SAE_LENS_VERSION-6.54.12}"
EAI_SPARSIFY_VERSION="${EAI_SPARSIFY_VERSION-1.3.3}"

# torch is pinned exactly, as in the project's constraints.txt: any range pulls a multi-GB CUDA
# build, while the pinned CPU build comes from the package index configured for pip.
TORCH_PIN="$(grep -E '^torch==' "$REPO/constraints.txt" 2>/dev/null | head -n 1)"
TORCH_PIN="${TORCH_PIN:-torch==2.13.0}"
TORCH_VERSION="${TORCH_PIN#torch==}"

VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install -q)

if [ ! -x "$VPY" ]; then
    echo "creating $VENV"
    "$PY" -m venv "$VENV" || { echo "FAILED: $PY -m venv $VENV"; exit 1; }
    "$VPY" -m pip install -q --upgrade pip || echo "warning: could not upgrade pip; going on"
else
    echo "using existing $VENV"
fi

CONSTRAINTS="$VENV/bench-constraints.txt"
printf '%s\n' "$TORCH_PIN" > "$CONSTRAINTS"

have_torch() {
    "$VPY" - "$TORCH_VERSION" <<'EOF' 2>/dev/null
import sys, torch
sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1] else 1)
EOF
}
have_sae_lens() { "$VPY" -c "import sae_lens" >/dev/null 2>&1; }
have_sparsify() { "$VPY" -c "from sparsify import SparseCoder, SparseCoderConfig" >/dev/null 2>&1; }

if have_torch; then
    echo "torch $TORCH_VERSION already installed"
else
    echo "installing $TORCH_PIN"
    if ! "${PIP[@]}" -c "$CONSTRAINTS" "$TORCH_PIN"; then
        echo "FAILED: could not install $TORCH_PIN into $VENV"
        exit 1
    fi
fi

declare -A WHY=()
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

# install_peer NAME CHECK SPEC: install SPEC under the torch pin unless CHECK already passes.
install_peer() {
    local name="$1" check="$2" spec="$3"
    if "$check"; then
        echo "$name already installed"
        return 0
    fi
    echo "installing $spec"
    if ! "${PIP[@]}" -c "$CONSTRAINTS" "$spec" >"$LOG" 2>&1; then
        cat "$LOG"
        WHY[$name]="pip could not install $spec beside $TORCH_PIN: $(grep -E 'ERROR|conflict' "$LOG" | tail -n 3 | cut -c 1-240 | tr '\n' ' ')"
        return 1
    fi
    if ! "$check"; then
        WHY[$name]="$spec installed but its import check fails"
        return 1
    fi
}

SAE_SPEC="sae-lens${SAE_LENS_VERSION:+==$SAE_LENS_VERSION}"
SP_SPEC="eai-sparsify${EAI_SPARSIFY_VERSION:+==$EAI_SPARSIFY_VERSION}"
ok=0
install_peer sae-lens have_sae_lens "$SAE_SPEC" && ok=$((ok + 1))
install_peer eai-sparsify have_sparsify "$SP_SPEC" && ok=$((ok + 1))

# A later install may have moved torch; the pin keeps it, and this says so if it did not.
have_torch || WHY[torch]="torch is no longer $TORCH_VERSION after the peer installs"

echo "installed in $VENV:"
"$VPY" -m pip freeze | grep -i -E 'torch|sae|sparsify'

for name in "${!WHY[@]}"; do
    echo "FAILED: $name: ${WHY[$name]}"
done
if [ "$ok" -eq 0 ]; then
    echo "FAILED: neither sae-lens nor eai-sparsify could be installed"
    exit 1
fi
exit 0
