#!/usr/bin/env bash
# zaremba-small (Zaremba et al. 2014 small config), LSTM, on the shared PTB: the #9 benchmark run.
# clip 0.25 per token (tutorial semantics) == clip 5 on the per-example gradient at bptt 20:
# both cap the summed window gradient at 100.
set -euo pipefail
R=${RNNLM:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/rnnlm}
MIRROR=${MIRROR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/ptb}
mkdir -p "${1:?usage: zaremba_small_run.sh WORKDIR}" && cd "$1"
date -u +"start %FT%TZ"
$R download --corpus ptb --url "$MIRROR" --files ptb.train.txt ptb.valid.txt ptb.test.txt --out-dir ptb
$R vocab --train ptb/train.txt --valid ptb/valid.txt --test ptb/test.txt --vocab data/vocab.tsv --stats data/stats.json
$R batchify --corpus ptb/train.txt --vocab data/vocab.tsv --batch-size 20 --out data/train.b20.npy
for s in valid test; do $R batchify --corpus ptb/$s.txt --vocab data/vocab.tsv --batch-size 1 --out data/$s.b1.npy; done
$R batchify --corpus ptb/test.txt --vocab data/vocab.tsv --batch-size 20 --out data/test.b20.npy
$R train --mode lstm --vocab data/vocab.tsv --train data/train.b20.npy --valid data/valid.b1.npy --out-dir run/lstm \
  --emsize 200 --nhid 200 --nlayers 2 --dropout 0 --no-tied --init-range 0.1 --lr 1 --clip 0.25 \
  --epochs 13 --bptt 20 --seed 1 --lr-schedule fixed --decay-after 4 --decay-factor 0.5 --threads 1 --log-interval 400
date -u +"trained %FT%TZ"
$R evaluate --run-dir run/lstm --data data/test.b1.npy --bptt 20 --split test --out run/lstm/test.b1.json --threads 1
$R evaluate --run-dir run/lstm --data data/test.b20.npy --bptt 20 --split test --out run/lstm/test.b20.json --threads 1
date -u +"done %FT%TZ"
