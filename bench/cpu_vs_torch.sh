#!/bin/bash
# r1ts beside PyTorch on the CPU, on the same pinned cores (docs/BENCHMARKS.md, "CPU against PyTorch"):
# bench/train.ts beside bench/torch_cpu_train.py, and bench/sample.ts (batch 1 and 32) beside
# bench/hf_generate_cpu.py, on 2 cores and on every core. Appends one JSON line per row to
# $OUT/cpu_vs_torch.jsonl (default bench/results) and prints them.
#   bash bench/cpu_vs_torch.sh                    (train and sample, on 2 cores and on all cores)
#   WHAT=train CORES=all bash bench/cpu_vs_torch.sh (CORES: "two", "all" or taskset lists such as 0-3)
# Needs python3 with torch and transformers, and the native core built.
set -u
out=${OUT:-bench/results}
mkdir -p "$out"
log=$out/cpu_vs_torch.jsonl
# Two physical cores: CPU 0 and the first CPU that is not its hyperthread sibling.
second=$(python3 -c '
sib = set()
try:
    for part in open("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read().strip().split(","):
        a, _, b = part.partition("-")
        sib.update(range(int(a), int(b or a) + 1))
except OSError:
    sib = {0}
print(next(c for c in range(1, 4096) if c not in sib))')
cores_list=${CORES:-"two all"}
what=${WHAT:-"train sample"}
sizes=${SIZES:-"1m 5m 20m"}
lscpu > "$out/lscpu.txt" 2>&1 || true
# The cores' measured FMA peak (bench/fma_peak.cpp) beside each core set's rows: a virtual machine's vCPUs can be
# uneven (two sharing a physical core, or one shared with another tenant), which moves PyTorch's static OpenMP
# split more than r1ts's dynamic one (docs/BENCHMARKS.md, the Xeon call of 15:17).
${CXX:-c++} -O2 -march=native -pthread bench/fma_peak.cpp -o build/fma_peak 2>/dev/null || true
# Rows of a bench JSON file as JSON lines, labelled with the cores.
lines() { node -e '
  const [file, kind, cores] = process.argv.slice(1);
  const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
  for (const row of r.rows ?? r.results) console.log(JSON.stringify({ kind, cores, threads: r.threads, cpu: r.machine.model, load: r.loadAverage, ...row }));
' "$@"; }
for named in $cores_list; do
  case $named in
    two) cores="0,$second" ;;
    all) cores="0-$(($(nproc --all) - 1))" ;;
    *) cores=$named ;;
  esac
  [ -x build/fma_peak ] && taskset -c "$cores" build/fma_peak 0.3 | sed "s/^{/{\"kind\": \"fma_peak\", \"cores\": \"$cores\", /" | tee -a "$log"
  # r1ts: one process per size (its peak memory is that size's); PyTorch: one process for all sizes, since
  # importing torch and transformers takes seconds (its peak is then the largest so far: sizes run small to large).
  if [[ " $what " == *" train "* ]]; then
    for size in $sizes; do
      MIN_SECONDS=${MIN_SECONDS:-4} taskset -c "$cores" node --import tsx bench/train.ts "$size" > /dev/null && lines bench/results/train.json train_cpu_r1ts "$cores" | tee -a "$log"
    done
    MIN_SECONDS=${MIN_SECONDS:-4} taskset -c "$cores" python3 bench/torch_cpu_train.py $sizes | sed "s/^{/{\"cores\": \"$cores\", /" | tee -a "$log"
  fi
  if [[ " $what " == *" sample "* ]]; then
    for size in $sizes; do
      QUEUE=0 taskset -c "$cores" node --import tsx bench/sample.ts "$size" > /dev/null && lines bench/results/sample.json generate_cpu_r1ts "$cores" | tee -a "$log"
    done
    taskset -c "$cores" python3 bench/hf_generate_cpu.py $sizes | sed "s/^{/{\"cores\": \"$cores\", /" | tee -a "$log"
  fi
done
