#!/usr/bin/env bash
# The ablation behind the README's table: 5-fold CV of each variant at 128 px (CPU screening
# size) unless the row names another resolution, one MLflow parent run per row in experiment
# "ablation" (rows starting with "!" are whole commands: the champion preset). Each row is one
# command; run a subset by passing row numbers: scripts/ablation.sh 1 3
# Then the table: python -m ggo table --experiment ablation --experiment ggo
set -uo pipefail
cd "$(dirname "$0")/.."
base="+sweeps=cv train.epochs=40 train.patience=15 tracking.experiment=ablation"
rows=(
  ""                                            # 0: pix2pix reference recipe: unet + 70 px PatchGAN, BCE + 100 L1
  "disc=none"                                   # 1: supervised baseline, L1 only
  "disc=patchgan_small"                         # 2: 34 px PatchGAN
  "disc=patchgan_large"                         # 3: 142 px PatchGAN
  "gen=attention_unet"                          # 4: Attention U-Net
  "loss=dice"                                   # 5: adversarial + Dice
  "loss=bce_l1_dice"                            # 6: adversarial + L1 + Dice
  "disc=none loss=bce_l1_dice"                  # 7: supervised L1 + Dice
  "disc=none loss=dice"                         # 8: supervised Dice
  "loss=bce_l1_dice gen.lung_head=true"         # 9: + lung head (second output, GGO gated by lungs)
  "disc=none loss=bce_l1_dice gen.lung_head=true"  # 10: supervised, + lung head
  "! +sweeps=champion preprocess=res128 tracking.experiment=ablation"   # 11: the champion recipe at 128 px
  "! +sweeps=champion"                             # 12: the champion itself (256 px; experiment "ggo")
  "train.adversarial_update=same_pass"           # 13: one discriminator pass for both losses (issue 14)
  "! +sweeps=champion preprocess=res128 tracking.experiment=ablation gen.aux_heads=[lungs,heart,consolidation,devices]"  # 14: auxiliary heads
  "! +sweeps=champion preprocess=res128 tracking.experiment=ablation data.train_ggo_free=true"      # 15: GGO-free films as negatives
  "! +sweeps=champion preprocess=res128 tracking.experiment=ablation train.ema=0.99"                # 16: weight average of the generator (its BatchNorm statistics re-estimated: README, train.ema)
  "! +sweeps=champion preprocess=res128 tracking.experiment=ablation train.lr_schedule=cosine"      # 17: cosine decay
  "! +sweeps=champion preprocess=res128 tracking.experiment=ablation gen.base_filters=32"           # 18: wider generator (92 min here, ~2x the champion recipe)
  "! +sweeps=champion preprocess=res128 tracking.experiment=ablation train.seed=1"                  # 19: seed 1 of row 11; then python -m ggo rescore <row 11> --with-seeds-of <row 19> (two seeds per fold)
)
selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=($(seq 0 $((${#rows[@]} - 1))))
for i in "${selected[@]}"; do
  if [[ "${rows[$i]}" == "! "* ]]; then  # a complete command of its own (a preset)
    args="${rows[$i]#! }"
  else
    res="preprocess=res128"
    [[ "${rows[$i]}" == *preprocess=* ]] && res=""
    args="$base $res ${rows[$i]}"
  fi
  echo "=== row $i: python -m ggo train -m $args"
  start=$(date +%s)
  python -m ggo train -m $args
  echo "=== row $i took $(( $(date +%s) - start )) s"
done
