# Copyright: linuxnet.netns contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stands in for the pip bootstrap script (get-pip.py) that ansible-test downloads from a host CI cannot reach.

ansible-test runs it with the Python of a virtual environment it created without pip, and get-pip.py's
command line: pip's install arguments (``--disable-pip-version-check pip==25.2``) and, from ansible-core
2.17 on, get-pip.py's own ``--no-setuptools``/``--no-wheel``. pip comes from the interpreter's bundled
copy (ensurepip, no network), then installs what was asked from the index pip is configured for.
``make sanity`` copies it to ~/.ansible/test/cache/get_pip_VERSION.py for the version each core asks for.
"""

import ensurepip
import os
import subprocess
import sys

# get-pip.py's options that are no pip install option: they say what not to install besides pip.
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def main() -> int:
    # ensurepip turns pip's configuration off in os.environ for its own offline install; the install from the
    # index needs it as it was (the index, its certificate authority, constraints).
    environment = dict(os.environ)
    ensurepip.bootstrap(upgrade=True, default_pip=True)
    wanted = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    return subprocess.run([sys.executable, "-m", "pip", "install"] + wanted, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
