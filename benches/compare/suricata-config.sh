#!/usr/bin/env bash
# The Suricata side of the comparisons, shared by suricata.sh and live.sh: writes the
# catalog as Suricata rules to DIR/aiwarden.rules and prints a configuration that loads
# them and writes alerts (only) to DIR/eve.json. Callers append what they add (af-packet).
# usage: benches/compare/suricata-config.sh DIR > DIR/suricata.yaml   (from the repo root)
set -euo pipefail
dir=$1
python3 benches/compare/make-suricata-rules.py rules > "$dir/aiwarden.rules"
cat <<YAML
%YAML 1.1
---
include: /etc/suricata/suricata.yaml
default-rule-path: $dir
rule-files: [aiwarden.rules]
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types: [alert]
  - stats:
      enabled: no
YAML
