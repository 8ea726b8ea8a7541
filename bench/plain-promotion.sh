#!/usr/bin/env bash
# The floor for one promotion: what a CI job does with plain git. Clone the stage's branch (depth 1), set the
# image tag in one manifest, commit, push. No retry, no lock, no record: only git's own work.
#
#   bench/plain-promotion.sh <remote-url> <branch> <file> <image> <tag>
set -euo pipefail
remote=$1 branch=$2 file=$3 image=$4 tag=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --depth 1 --single-branch --branch "$branch" "$remote" "$work"
cd "$work"
sed -i "s|image: $image:[^ ]*|image: $image:$tag|" "$file"
git -c user.name=Bench -c user.email=bench@example.com commit --quiet -am "promote $tag"
git push --quiet origin "HEAD:refs/heads/$branch"
