"""`vanexport bench`: latency, throughput, memory and fidelity of every backend and precision, side by side.

stats (the numbers from samples), cases (what can run where), artifacts (the files each row runs), worker (one
row timed in a fresh process), run (the orchestration and the record), output (CSV and plot), floor (this
machine's compute ceilings). Rendering for people is in vanexport.report.
"""
