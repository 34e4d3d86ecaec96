# Runs this chapter anywhere (Colab, Binder, a laptop): installs htaf if it is missing and, outside the htaf
# repository, picks the quick "smoke" profile unless HTAF_PROFILE is set. Inside the repository it does nothing.
import importlib.util, os, pathlib, subprocess, sys
if importlib.util.find_spec("htaf") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/htaf-project/htaf"], check=True)
_here = pathlib.Path.cwd().resolve()
if not os.environ.get("HTAF_PROFILE") and not any((d / "_toc.yml").is_file() and (d / "htaf").is_dir() for d in (_here, *_here.parents)):
    os.environ["HTAF_PROFILE"] = "smoke"
    print("Outside the htaf repository: HTAF_PROFILE=smoke (a run of minutes); set HTAF_PROFILE to choose another profile.")
