"""The JSON file the peer benchmark scripts write with `--json OUT`, and `plot_benchmarks.py` reads.

One object per run: which benchmark, the rows it measured (each script's own row format, the
same rows it prints with a bare `--json`), and what a chart must name beside them: the machine,
the vector ISA the flash binary was built for (from `flash --version`), the thread count, the
UTC date and the load average around the run (this machine is shared, so a loaded run says so).

    {"benchmark": "gemm", "machine": "AMD EPYC 9B14, 2 cores", "isa": "AVX-512", "threads": [1, 2],
     "date": "2026-11-24T21:06Z", "load_average": [0.4, 1.9], "note": "", "rows": [...]}
"""
import datetime
import json
import os
import platform
import subprocess


def machine():
    """CPU model and core count, e.g. 'AMD EPYC 9B14, 2 cores'."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def isa(flash):
    """The ISA in `flash --version` ('flash 0.1.0 (AVX-512, 16-float vectors)'), or None."""
    try:
        text = subprocess.run([flash, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if "(" not in text:
        return None
    return text.split("(", 1)[1].split(",", 1)[0].rstrip(")").strip()


def load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


class Run:
    """Records the load when a benchmark starts; `write` adds it and the load at the end."""

    def __init__(self, benchmark, flash):
        self.benchmark, self.flash = benchmark, flash
        self.start_load = load_average()
        self.date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")

    def write(self, path, rows, threads, note="", extra=None):
        """Writes the rows with the run's description to `path`; `extra` adds keys of the
        benchmark's own (results that are not rows of the chart, the settings)."""
        document = dict(benchmark=self.benchmark, machine=machine(), isa=isa(self.flash),
                        threads=threads, date=self.date, load_average=[self.start_load, load_average()],
                        note=note, rows=rows, **(extra or {}))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as file:
            json.dump(document, file, indent=1)
            file.write("\n")
