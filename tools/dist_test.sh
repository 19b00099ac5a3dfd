#!/usr/bin/env bash
# Distributed evaluation with torchrun (one process per GPU); the metrics are
# gathered from all processes and reported once, by rank 0.
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT NGPUS [tools/test.py options]
#
# Multi-node: run the same command on every node with
#   NNODES=<number of nodes> NODE_RANK=<0..NNODES-1>
#   MASTER_ADDR=<address of node 0> PORT=<free port on node 0>
# Without GPUs the processes use the gloo backend on the CPU.
set -euo pipefail
if [ "$#" -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT NGPUS [tools/test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
DIR="$(cd "$(dirname "$0")" && pwd)"
PYTHON=${PYTHON:-python}

PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$DIR/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "$@"
