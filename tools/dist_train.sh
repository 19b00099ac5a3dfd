#!/usr/bin/env bash
# Distributed training with torchrun (one process per GPU).
#
#   bash tools/dist_train.sh CONFIG NGPUS [tools/train.py options]
#
# Multi-node: run the same command on every node with
#   NNODES=<number of nodes> NODE_RANK=<0..NNODES-1>
#   MASTER_ADDR=<address of node 0> PORT=<free port on node 0>
# Without GPUs the processes use the gloo backend on the CPU.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: bash $0 CONFIG NGPUS [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
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
    "$DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "$@"
