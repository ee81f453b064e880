import sys
from pathlib import Path

# formats_factories; appended, not put first: other suites import their own `conftest` by name.
sys.path.append(str(Path(__file__).parent))
