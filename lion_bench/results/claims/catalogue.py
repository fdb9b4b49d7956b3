"""Every testable claim about Lion vs AdamW that lion_bench judges: the lion-pytorch README (its updates and
instructions, the current text and the first one), the Lion paper (Chen et al. 2023) as that README quotes
it, and the two papers whose options lion-pytorch added (cautious Lion, decoupled weight decay). Each entry
keeps its source's own words, the rule we judge it by, and the preset that supplies its runs. The first
entry is the question users come with.
"""

from __future__ import annotations

from lion_bench.results.claims.base import Claim

README = "lion-pytorch README"
PAPER = "Chen et al. 2023, section 5, as the lion-pytorch README quotes it"
LARGE_BATCH = 64
RATIO_RANGE = (3.0, 10.0)
TEN_NOT_THREE = 30 ** 0.5  # 5.48: the ratio closer (in log scale) to 10 than to 3
STRENGTH_RANGE = (1 / 3, 3.0)  # "a similar strength": lr x weight decay within a factor 3
MUCH_WORSE_FRACTION = 0.02  # update 2's "much worse": by more than 2% of AdamW's mean final loss
STATE_RATIO = 0.5
STATE_TOLERANCE = 0.01
SPIKE_FRACTION = 0.25  # a loss spike: a train loss 25% above the lowest logged before it (after warmup)
WD_INDEPENDENCE = 2.0  # "no longer depends on the lr": best weight decays at two lrs within a factor 2
EDGE_RULE = ("either end of its lr grid, the top of its weight-decay grid, or its bottom when above 0; weight "
             "decay 0 is the bound of the parameter, not an edge: a best arm at 0 is an optimum")
TIED_RULE = ("not judged when Lion's grid is tied to AdamW's (ratio space: Lion at base lr / k, one k other than "
             "1, at AdamW's grid lrs: sweep=lr_grid); two grids of their own (absolute lrs, the same or not; each "
             "optimizer's own divisors of one base lr: sweep=tuned) measure the ratio")

CLAIMS = (
    Claim("tuned", "Lion tuned vs AdamW tuned", "Lion at its best setting against AdamW at its best setting",
          "the question users bring", "Does Lion beat AdamW, each tuned on its own?",
          rule="each optimizer's best arm on its own grid (lr, and weight decay where swept), chosen on the "
               "selection seeds (without a protocol: each seed's value at the arm best on the other seeds), arms "
               "compared on the same seeds; Lion - AdamW final val loss on the answer seeds, paired by seed; "
               "three-way: Lion better, AdamW better, equivalent within the margin, or inconclusive; not judged "
               f"when a best arm is at the edge of its grid ({EDGE_RULE}); tuneability: the grid lrs within 1% "
               "of each optimizer's best",
          preset="tuned", needs=">= 3 lrs per optimizer (each best inside its grid), >= 3 answer seeds", headline=True),
    Claim("update5", "Update 5", "Lion wins on language modeling and loses on feedforward nets and LSTM + "
          "convolution hybrids", f"{README}, update 5",
          "so far hearing all positive results for language modeling, when done right. [...] The negative results "
          "seem to be with problems and architectures outside of what was evaluated in the paper - RL, "
          "feedforward networks, weird hybrid architectures with LSTMs + convolutions etc. Negative anecdata also "
          "confirms this technique is sensitive to batch size, amount of data / augmentation.",
          rule="the tuned answer per task: supported when Lion is better or equivalent on the byte-level LM and "
               "AdamW better on mlp and on lstm_conv; contradicted when any of them says the opposite (batch-size "
               "sensitivity is update 7's question)",
          preset="tuned", needs="the tuned answer on text (or enwik8) and on mlp and/or lstm_conv"),
    Claim("update2", "Update 2", "Lion at AdamW's lr is much worse than AdamW", f"{README}, update 2",
          "seems much worse than Adam if learning rate held constant.",
          rule=f"final val loss, Lion at AdamW's lr minus AdamW, paired by seed; supported when above "
               f"{MUCH_WORSE_FRACTION:.0%} of AdamW's mean, contradicted when below it",
          preset="lr_ratio", needs="Lion at AdamW's lr and AdamW, >= 3 seeds"),
    Claim("update3", "Update 3", "Lion at AdamW's lr / 3 gives better early results than AdamW",
          f"{README}, update 3", "Dividing the learning rate by 3, seeing better early results than Adam.",
          rule="val loss at the early budget (tokens, fixed in the protocol; without one, a quarter of the run), "
               "Lion at lr / 3 minus AdamW, three-way; supported when Lion is better; shown with the step and "
               "tokens where the curves cross and the final comparison",
          preset="lr_ratio", needs="Lion at AdamW's lr / 3 and AdamW evaluated at or before the early budget, "
                                   ">= 3 seeds"),
    Claim("summary_lr3", "Summary: lr / 3 beats Adam", "Lion at AdamW's lr / 3 ends better than AdamW",
          f"{README}, the summary of updates 2-4", "Lion with a 3x smaller learning rate beats Adam.",
          rule="final val loss, Lion at lr / 3 minus AdamW, three-way; supported when Lion is better",
          preset="lr_ratio", needs="Lion at AdamW's lr / 3 and AdamW, >= 3 seeds"),
    Claim("update4_vs3", "Update 4 (summary)", "Lion at AdamW's lr / 10 is worse than at lr / 3",
          f"{README}, the summary of update 4", "a 10x smaller learning rate leads to a worse result.",
          rule="final val loss, lr / 10 minus lr / 3; supported when above 0, contradicted when below",
          preset="lr_ratio", needs="Lion at AdamW's lr / 3 and / 10, >= 3 seeds"),
    Claim("update4_worst", "Update 4 (strict)", "lr / 10 is the worst of Lion at AdamW's lr / {1, 3, 10}",
          f"{README}, update 4", "using the 10x smaller learning rate rule of thumb from the paper resulted in the "
          "worst run.",
          rule="final val loss, lr / 10 minus lr / 1 and minus lr / 3: supported when both are above 0, "
               "contradicted when either is below",
          preset="lr_ratio", needs="Lion at AdamW's lr / 1, / 3 and / 10, >= 3 seeds"),
    Claim("older_10x", "First README: 10x", "Lion's best lr is nearer 10x than 3x smaller than AdamW's",
          f"{README}, its first version quoting Chen et al. 2023",
          "a suitable learning rate for Lion is typically 10x smaller than that for AdamW, although sometimes a "
          "learning rate that is 3x smaller may perform slightly better.",
          rule=f"AdamW's best lr / Lion's best lr from grids of their own (as the paper's ratio); supported when "
               f"its interval lies above {TEN_NOT_THREE:.2f} (nearer 10 than 3 in log scale), contradicted when "
               "below",
          preset="tuned", needs="both optimizers on independent lr grids, >= 4 values each, best inside"),
    Claim("paper_lr", "Paper: lr 3-10x smaller", "Lion's best lr is 3-10x smaller than AdamW's best lr", PAPER,
          "a suitable learning rate for Lion is typically 3-10x smaller than that for AdamW.",
          rule=f"each optimizer's best lr from a quadratic in log lr over >= 4 points of its own grid, every "
               f"point a mean over the seeds all points ran; AdamW / Lion with an interval from a bootstrap over "
               f"seeds plus the fit's own uncertainty; supported when it lies in [{RATIO_RANGE[0]:g}, "
               f"{RATIO_RANGE[1]:g}]; {TIED_RULE}; not judged when a best lr is at its grid's edge",
          preset="tuned", needs="both optimizers on independent lr grids, >= 4 values each, best inside, "
                                  ">= 3 seeds"),
    Claim("paper_wd", "Paper: similar lr x wd", "Lion's best lr x weight decay is close to AdamW's", PAPER,
          "Since the effective weight decay is lr * λ, the value of decoupled weight decay λ used for Lion is "
          "3-10x larger than that for AdamW in order to maintain a similar strength.",
          rule=f"each optimizer's best (lr, weight decay) on its own grids, every arm a mean over the same seeds "
               f"(those every arm ran; the selection seeds where named); (lr x wd) of Lion / of AdamW with a "
               f"bootstrap interval; supported when it lies within a factor {STRENGTH_RANGE[1]:g} of 1; the "
               f"weight-decay ratio itself is shown beside; not judged when a best arm is at the edge of its grid "
               f"({EDGE_RULE})",
          preset="wd_grid", needs="each optimizer at >= 2 weight decays > 0 at its best lr, >= 3 seeds"),
    Claim("schedule_ratio", "Schedule scaled whole", "Scaling the whole lr schedule (initial, peak, end) by the "
          "same ratio beats scaling only the peak", f"{README}, instructions",
          "The initial value, peak value, and end value in the learning rate schedule should be changed "
          "simultaneously with the same ratio compared to AdamW",
          rule="final val loss of Lion with its end lr scaled like its peak minus Lion with AdamW's end lr "
               "(trainer.schedule.final_fraction times the lr divisor), three-way; supported when the scaled "
               "schedule is better",
          preset="schedule_ratio", needs="Lion at one lr with both end fractions, >= 3 seeds"),
    Claim("schedule_cosine", "Cosine vs rsqrt", "Lion's gain over AdamW is larger with a cosine schedule than "
          "with a reciprocal square-root one", f"{README}, instructions (Chen et al. 2023, on ViT)",
          "they observe a larger gain when using a cosine decay schedule to train ViT, compared to a reciprocal "
          "square-root schedule.",
          rule="per seed, gain = AdamW - Lion final val loss under each schedule; gain(cosine) - gain(rsqrt); "
               "supported when above 0, contradicted when below",
          preset="schedule", needs="AdamW and Lion under trainer.schedule.name=cosine and inverse_sqrt, >= 3 seeds"),
    Claim("betas", "Betas 0.95, 0.98", "Lion with betas (0.95, 0.98) is more stable than with (0.9, 0.99)",
          f"{README}, instructions (Chen et al. 2023)",
          "using β1=0.95, β2=0.98 in Lion can also be helpful in mitigating instability during training",
          rule=f"runs paired by lr and seed near the edge of stability; an instability is a divergence or a loss "
               f"spike (a train loss {SPIKE_FRACTION:.0%} above the lowest logged before it, after warmup); sign "
               f"test over the pairs where only one had one; supported when (0.95, 0.98) has fewer",
          preset="betas", needs="Lion with both betas at the same lrs (the largest of its grid), >= 3 pairs"),
    Claim("update7", "Update 7", f"Lion's advantage grows with batch size and Lion is not worse at >= {LARGE_BATCH}",
          f"{README}, update 7",
          f"would only recommend this optimizer in the setting of high batch sizes ({LARGE_BATCH} or above)",
          rule=f"one token budget; per batch size each optimizer at its best arm: with a protocol's selection and "
               f"answer seeds, the tuned answer at that batch (best lr and weight decay on the selection seeds, "
               f"Lion - AdamW on the answer seeds); without them, its best lr of a grid at each weight decay "
               f"(leave one seed out); supported when the advantage (AdamW - Lion) grows with log2 batch (per-seed "
               f"slope above 0) and Lion is better or equivalent at every judged batch >= {LARGE_BATCH}; "
               f"contradicted when the slope is below 0 or AdamW is better at a batch >= {LARGE_BATCH}; Lion losing "
               f"below {LARGE_BATCH} is consistent with the claim; needs >= 2 judged batch sizes, one >= "
               f"{LARGE_BATCH} (a batch without a tuned answer or with < 3 answer seeds is listed, not judged); not "
               f"judged when a best arm is at the edge of its grid at a judged batch ({EDGE_RULE})",
          preset="batch_lr_grid", needs=f"both optimizers at >= 3 lrs at >= 2 batch sizes, one >= {LARGE_BATCH}, "
                                        "trainer.budget=tokens, >= 3 seeds"),
    Claim("batch_crossing", "Batch crossing", "The batch size where Lion stops losing to AdamW (update 7 puts it "
          f"at {LARGE_BATCH})", f"{README}, update 7",
          f"would only recommend this optimizer in the setting of high batch sizes ({LARGE_BATCH} or above)",
          rule="per batch size, Lion - AdamW at each optimizer's best arm (the tuned answers, as in update 7); the "
               "crossing is the smallest studied batch after which Lion is never behind (Lion - AdamW <= 0 at every "
               "larger studied batch), interpolated linearly in log2 batch between the last batch where Lion is "
               "behind and the next; the estimate is the crossing of the mean difference over the answer seeds, "
               "its interval the crossings of a band of t intervals of that mean at every batch, each at the "
               "question's Holm level / the number of batches (a distribution-free interval of the per-seed "
               "median cannot reach that level with 5 seeds: their range covers it at 93.75%); the per-seed "
               "crossings' median and range are shown beside; answers: crosses at B [lo, hi], never crosses "
               "within the studied batches (the band is behind at the largest), ahead from the smallest (the band "
               "is nowhere behind), or inconclusive (the interval holds more than one of these); not judged when a "
               "best arm is at the edge of its grid at a judged batch, as update 7",
          preset="batch_lr_grid", needs="both optimizers tuned at >= 2 batch sizes, trainer.budget=tokens, "
                                        ">= 3 seeds shared by every judged batch"),
    Claim("state_half", "Less memory", "Lion uses less memory than AdamW (its optimizer state is half of AdamW's)",
          "Chen et al. 2023",
          "It is more memory-efficient than Adam as it only keeps track of the momentum. (the abstract)",
          rule="the records' peak device memory (peak_memory_bytes), Lion - AdamW paired by seed (each seed's "
               "median over its arms) within one setup (task, model, batch, device type) and one kind of peak, "
               "fp32 state; supported when the 95% interval lies below 0, contradicted when above (a measurement: "
               "outside any Holm family); a record without its own peak (none, a process's lifetime peak, a "
               "packed trial's) counts for nothing, and the cell says how many had one; optimizer_state_bytes "
               f"Lion / AdamW shown beside; where no record has its own peak, judged on those bytes alone: holds "
               f"when within {STATE_TOLERANCE:g} of {STATE_RATIO:g}",
          preset="lr_ratio", needs="finished Lion and AdamW runs of one setup, >= 3 seeds with peak memory",
          measured=True),
    Claim("cautious", "Cautious Lion", "Cautious Lion ends better than Lion at the same lr",
          "Liang et al. 2024 (lion-pytorch's cautious_factor)",
          "Cautious Optimizers: Improving Training with One Line of Code (the paper's title)",
          rule="final val loss, cautious Lion minus Lion at the same lr and weight decay, three-way; supported when "
               "cautious is better",
          preset="cautious", needs="Lion and cautious Lion at the same lr, >= 3 seeds"),
    Claim("decoupled_wd", "Decoupled weight decay", "With decoupled weight decay, Lion's best weight decay no "
          "longer depends on the lr", "Schaipp 2024 (lion-pytorch's decoupled_weight_decay)",
          "(our paraphrase of the post) with the weight decay decoupled from the learning rate, the best weight "
          "decay no longer depends on the learning rate",
          rule=f"Lion with decoupled_weight_decay=true on weight-decay grids at two lrs; the ratio of the best "
               f"weight decays with a bootstrap interval; supported when within a factor {WD_INDEPENDENCE:g} of 1, "
               "contradicted when wholly outside; not judged when a best weight decay is at an end of its grid",
          preset="decoupled_wd", needs="decoupled Lion at 2 lrs, >= 3 weight decays > 0 at each, >= 3 seeds"),
)
CLAIM_BY_KEY = {claim.key: claim for claim in CLAIMS}
