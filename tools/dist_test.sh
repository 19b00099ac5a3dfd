#!/usr/bin/env bash
# torchrun tools/test.py on NGPUS processes (gloo on the CPU without GPUs);
# several nodes: NNODES, NODE_RANK, MASTER_ADDR, PORT (docs/train_test.md).
[ $# -ge 3 ] || { echo "usage: $0 CONFIG CKPT NGPUS [options]" >&2; exit 2; }
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
