"""The streaming benchmark: `python -m bench` (`make bench`).

Time to first delta and inter-delta gap through the gateway against the same stream read straight
from the provider simulator, at 1 and 100 concurrent streams; then how many open streams one
gateway and one chat_service process hold, and their memory per open stream. Not a test: it prints
a table and writes docs/benchmarks.md. See bench/run.py for the method.
"""
