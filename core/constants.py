"""Names and numbers every package of the kit agrees on."""

#: The four MDX targets, in the grader's order (alphabetical, as MUSDB18-HQ folders list them).
TARGETS = ("bass", "drums", "other", "vocals")

#: The rate every model runs at; inputs at other rates are resampled in and written back out.
SAMPLE_RATE = 44100

#: Numerical floor of the grader's SDR (added to numerator and denominator).
SDR_EPS = 1e-7
