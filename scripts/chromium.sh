#!/bin/sh
# Installs Debian's chromium when it is missing: the status page's test
# (test/integration/statuspage_test.go) drives it headless. make test calls
# this; the test fails without chromium (it skips only under -short).
set -e
command -v chromium >/dev/null 2>&1 && exit 0
[ -x /usr/bin/chromium ] && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
echo "installing chromium (apt-get) for the status page's browser test"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
