# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stands in for the pip bootstrap script ansible-test downloads from a host CI cannot reach.

ansible-test runs it with a new virtual environment's Python and pip's command line (e.g.
``--disable-pip-version-check pip==23.1.2 setuptools wheel``, which get-pip.py installs): pip comes from the interpreter's own bundled copy
(ensurepip, no network), then does what was asked from the package index pip is configured for.
.ci/run copies it to ~/.ansible/test/cache/get_pip_VERSION.py for the pip version ansible-test asks for.
"""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + sys.argv[1:]))
