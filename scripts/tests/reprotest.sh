#!/usr/bin/env bash
# Issue 6, in the spirit of reprotest: the demo image must not depend on the machine state around the build.
#
# Build A runs in the checkout as usual. Build B runs with every variation at once:
#   - another checkout path: the files the recipe uses (recipes/, build/demo/, the used part of build/kernel/root)
#     copied, without symlinks, into a fresh temporary directory at a different depth;
#   - the input files created in reverse order, each with a different mtime (touch -d);
#   - umask 077 (A: 022), another TZ, LC_ALL set to a non-UTF-8 locale (ISO-8859-1 if `locale -a` lists one, else C),
#     another HOME and TMPDIR, another --jobs count.
# The bundles must be byte-identical (cmp), and so must the manifests, every other output and the lock files.
# On a difference it says which output differs, with `cvmforge diff` (and `cmp -l | head` per file).
# Prints `N passed, N failed`; exits non-zero on a failure.
#
# Needs scripts/setup.sh run first. CVMFORGE_BIN names the cvmforge binary (default target/release/cvmforge).
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

bin=${CVMFORGE_BIN:-target/release/cvmforge}
case $bin in /*) ;; *) bin=$repo/$bin ;; esac
work=$repo/build/reprotest
passed=0
failed=0
scratch=

pass() { passed=$((passed + 1)); echo "reprotest: ok:   $*"; }
fail() { failed=$((failed + 1)); echo "reprotest: FAIL: $*"; }
finish() {
  echo "reprotest: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}
cleanup() { [ -n "$scratch" ] && rm -rf "$scratch"; }
trap cleanup EXIT

[ -x "$bin" ] || { fail "$bin is not built (run scripts/setup.sh)"; finish; }
rm -rf "$work"
mkdir -p "$work"

# A non-UTF-8 locale for build B, if this machine has one.
locale_b=C
note_b="C (ASCII; no ISO-8859 locale is installed)"
for candidate in $(locale -a 2>/dev/null | grep -iE '8859|latin' | sort); do
  locale_b=$candidate
  note_b="$candidate (from locale -a)"
  break
done
locale_a=C.UTF-8
locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' || locale_a=C

# --- build A: the checkout as it is ---------------------------------------------------------------------------------
start=$SECONDS
if (umask 022 && TZ=UTC LC_ALL=$locale_a "$bin" build recipes/demo.yaml -o "$work/a" --force --jobs 2) \
  > "$work/a.log" 2>&1; then
  pass "build A: $repo, umask 022, TZ=UTC, LC_ALL=$locale_a, --jobs 2 ($((SECONDS - start)) s)"
else
  fail "build A failed:"; sed 's/^/    /' "$work/a.log"; finish
fi
cp recipes/demo.lock "$work/a.lock"

# --- the other checkout: only what the recipe reads, copied in reverse order with other mtimes -----------------------
scratch=$(mktemp -d "${TMPDIR:-/tmp}/cvmforge-reprotest.XXXXXX")
tree=$scratch/some/other/place/checkout
mkdir -p "$tree" "$scratch/home" "$scratch/tmp"

# The kernel package files the build used: the module sources the manifest lists, and the module directory's
# metadata files; everything else the recipe names is under recipes/ and build/demo/.
kver=$(ls build/kernel/root/lib/modules)
modules=$(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
for e in m["sealing"]["modules"]["modules"]:
    print(e["source"])
' "$work/a/manifest.json") || { fail "cannot read the module list from $work/a/manifest.json"; finish; }
files=(recipes/demo.yaml)
while IFS= read -r f; do files+=("$f"); done < <(find build/demo -type f | sort)
for f in build/kernel/root/lib/modules/"$kver"/modules.*; do files+=("$f"); done
for m in $modules; do files+=("build/kernel/root/lib/modules/$kver/$m"); done

# Reverse sorted order, so directory entries and inode numbers come out the other way round; `cp -L` copies file
# content only (no symlinks, no modes beyond the umask, no timestamps), then each file gets its own date.
mapfile -t reversed < <(printf '%s\n' "${files[@]}" | sort -r)
day=1
copy_ok=1
for f in "${reversed[@]}"; do
  (umask 077 && mkdir -p "$tree/$(dirname "$f")" && cp -L "$f" "$tree/$f") || copy_ok=
  touch -d "2001-02-$(printf %02d $((day % 28 + 1))) 0$((day % 10)):17:00" "$tree/$f" || copy_ok=
  day=$((day + 3))
done
if [ -n "$copy_ok" ] && ! find "$tree" -type l | grep -q .; then
  pass "copied ${#reversed[@]} input files (reverse order, mtimes 2001-02-xx, no symlinks) to $tree"
else
  fail "copying the inputs to $tree failed"; finish
fi

# --- build B: every variation at once ---------------------------------------------------------------------------------
start=$SECONDS
if (cd "$tree/recipes" && umask 077 \
  && HOME=$scratch/home TMPDIR=$scratch/tmp TZ=Pacific/Kiritimati LC_ALL=$locale_b \
     "$bin" build demo.yaml -o "$tree/out-b" --jobs 1) > "$work/b.log" 2>&1; then
  pass "build B: $tree, cwd recipes/, umask 077, TZ=Pacific/Kiritimati, LC_ALL=$note_b, HOME and TMPDIR under $scratch, --jobs 1 ($((SECONDS - start)) s)"
else
  fail "build B failed:"; sed 's/^/    /' "$work/b.log"; finish
fi
mv "$tree/out-b" "$work/b"
cp "$tree/recipes/demo.lock" "$work/b.lock"

# --- compare -------------------------------------------------------------------------------------------------------------
bundle=demo-0.1.0.cvm.tar
sha_a=$(sha256sum "$work/a/$bundle" | cut -d' ' -f1)
sha_b=$(sha256sum "$work/b/$bundle" | cut -d' ' -f1)
echo "reprotest: bundle A sha256 $sha_a"
echo "reprotest: bundle B sha256 $sha_b"

explain() {
  # Which output differs, and how: cvmforge diff when this binary has it, then the first differing bytes.
  if "$bin" diff --help >/dev/null 2>&1; then
    echo "    cvmforge diff $work/a $work/b:"
    "$bin" diff "$work/a" "$work/b" 2>&1 | head -n 40 | sed 's/^/      /'
  fi
  for f in $(cd "$work/a" && ls); do
    if ! cmp -s "$work/a/$f" "$work/b/$f"; then
      echo "    $f differs; first differing bytes (offset, A, B in octal):"
      cmp -l "$work/a/$f" "$work/b/$f" 2>&1 | head -n 5 | sed 's/^/      /'
    fi
  done
}

if cmp "$work/a/$bundle" "$work/b/$bundle"; then
  pass "bundles are byte-identical ($bundle, $(stat -c %s "$work/a/$bundle") bytes)"
else
  fail "bundles differ"; explain
fi
if cmp "$work/a/manifest.json" "$work/b/manifest.json"; then
  pass "manifests are identical (sha256 $(sha256sum "$work/a/manifest.json" | cut -d' ' -f1))"
else
  fail "manifests differ:"; diff "$work/a/manifest.json" "$work/b/manifest.json" | head -n 20 | sed 's/^/    /'
fi
names_a=$(cd "$work/a" && ls)
names_b=$(cd "$work/b" && ls)
differing=
for f in $names_a; do cmp -s "$work/a/$f" "$work/b/$f" || differing+=" $f"; done
if [ "$names_a" = "$names_b" ] && [ -z "$differing" ]; then
  pass "all $(echo "$names_a" | wc -w) outputs identical: $(echo $names_a)"
else
  fail "outputs differ:${differing:- (different file names: A has $(echo $names_a), B has $(echo $names_b))}"
  [ -n "$differing" ] && [ "$failed" -eq 1 ] && explain
fi
if cmp -s "$work/a.lock" "$work/b.lock"; then
  pass "lock files are identical"
else
  fail "lock files differ:"; diff "$work/a.lock" "$work/b.lock" | head -n 20 | sed 's/^/    /'
fi

finish
