#!/bin/sh
# vmagent sharding pushkit's remote write across two VictoriaMetrics nodes.
# Each -remoteWrite.url takes the -remoteWrite.urlRelabelConfig given in the
# same position; the two configs keep complementary halves of the series.
# -remoteWrite.tmpDataPath is vmagent's own disk queue per node.
set -eu
NODE0=${NODE0:-http://vm-0:8428}
NODE1=${NODE1:-http://vm-1:8428}
DIR=$(dirname "$0")
exec vmagent \
  -httpListenAddr=127.0.0.1:8429 \
  -remoteWrite.tmpDataPath=/var/lib/vmagent \
  -remoteWrite.url="$NODE0/api/v1/write" \
  -remoteWrite.urlRelabelConfig="$DIR/shard-0.yml" \
  -remoteWrite.url="$NODE1/api/v1/write" \
  -remoteWrite.urlRelabelConfig="$DIR/shard-1.yml"
