#!/usr/bin/env bash
# Regenerates fixtures/hostile/ (deterministic: a fixed random seed). The committed corpus is
# small; the big and the special inputs (FIFOs, devices, sockets, 100k entries, 1 MB
# attributes, deep nesting, odd file names, git repositories) are made at test time by
# tests/hostile.rs.
#   bash scripts/gen-hostile.sh
# Layout: fixtures/hostile/<kind>/<name>, one hostile input each; the kind says how the test
# runs it: bpl/ (states), thread/ (verify-numbering), overrides/ (plan --overrides),
# folder/ (plan --verify), rev.txt (REV:path sources, one per line, \xNN escapes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q
OUT=fixtures/hostile
rm -rf "$OUT"
mkdir -p "$OUT"/{bpl,thread,overrides,folder}
python3 - "$OUT" <<'PY'
import os, random, sys
out = sys.argv[1]
rnd = random.Random(16)
def w(kind, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(out, kind, name), "wb") as f:
        f.write(data)

seeds = {
    "udl": open("fixtures/changes/removed_wait_state/old.cls", "rb").read(),
    "flow": open("fixtures/changes/flow_renumbering/old.cls", "rb").read(),
    "export": open("fixtures/formats/Demo.Loan.Approval.xml", "rb").read(),
    "escaped": open("fixtures/formats/loan-escaped.xml", "rb").read(),
    "bare": open("fixtures/formats/loan.xml", "rb").read(),
    "crlfbom": open("fixtures/formats/loan-crlf-bom.cls", "rb").read(),
}
# Truncations: every seed cut at 20 points (incl. inside multi-byte characters when any).
for k, b in seeds.items():
    for i in range(20):
        cut = (len(b) * (i + 1)) // 21 + rnd.randrange(-7, 8)
        w("bpl", f"trunc-{k}-{i:02}.{'xml' if b.lstrip().startswith(b'<') else 'cls'}", b[:max(cut, 0)])
# Byte flips: 15 mutations per seed (replace, insert a syntax byte, delete a span).
for k, b in seeds.items():
    ext = 'xml' if b.lstrip().startswith(b'<') else 'cls'
    for i in range(15):
        m = bytearray(b)
        for _ in range(1 + i % 4):
            p = rnd.randrange(len(m))
            op = rnd.randrange(3)
            if op == 0:
                m[p] = rnd.choice([0, 0x22, 0x27, 0x3c, 0x3e, 0x26, 0x7b, 0x7d, 0xc3, 0xff, 0x0d, rnd.randrange(256)])
            elif op == 1:
                m[p:p] = rnd.choice([b"<", b"</", b"\"", b"'", b"{", b"}", b"]]>", b"<![CDATA[", b"&#0;", b"&lt", b"\r", b"\xe2\x80\xae"])
            else:
                del m[p:p + rnd.randrange(1, 40)]
        w("bpl", f"flip-{k}-{i:02}.{ext}", bytes(m))

P = "<process request='Ens.Request' response='Ens.Response'>"
def bare(body, pre=""):
    return f"<?xml version='1.0'?>\n{pre}{P}\n<sequence>\n{body}\n</sequence>\n</process>\n"
def udl(body, cls="Demo.Hostile", pre=""):
    return f"Class {cls} Extends Ens.BusinessProcessBPL\n{{\n\nXData BPL\n{{\n{pre}{P}\n<sequence>\n{body}\n</sequence>\n</process>\n}}\n\n}}\n"
def export(body, pre="", cls="Demo.Hostile"):
    return f"<?xml version='1.0' encoding='UTF-8'?>\n{pre}<Export generator='IRIS' version='26'>\n<Class name='{cls}'>\n<Super>Ens.BusinessProcessBPL</Super>\n<XData name='BPL'>\n<Data><![CDATA[{P}\n<sequence>\n{body}\n</sequence>\n</process>]]></Data>\n</XData>\n</Class>\n</Export>\n"
call = "<call name='C' target='T' async='0'><request type='Ens.Request'/></call>"

# Entity bombs and DOCTYPE / XXE, in every container format.
laughs = "<!DOCTYPE lolz [<!ENTITY lol 'lol'>" + "".join(
    f"<!ENTITY lol{i} '{('&lol%s;' % (i - 1 if i > 1 else '')) * 10}'>" for i in range(1, 10)) + "]>\n"
quad = "<!DOCTYPE q [<!ENTITY a '" + "A" * 20000 + "'>]>\n"
xxe = "<!DOCTYPE p [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>\n"
param = "<!DOCTYPE p [<!ENTITY % r SYSTEM 'http://127.0.0.1:9/x.dtd'> %r;]>\n"
for fmt, make in [("bare", bare), ("udl", udl), ("export", export)]:
    ext = "cls" if fmt == "udl" else "xml"
    w("bpl", f"bomb-laughs-{fmt}.{ext}", make(f"<assign property='context.A' value='\"&lol9;\"'/>", pre=laughs))
    w("bpl", f"bomb-quadratic-{fmt}.{ext}", make("".join(f"<trace name='T{i}' value='\"&a;\"'/>" for i in range(100)), pre=quad))
    w("bpl", f"xxe-file-{fmt}.{ext}", make("<trace value='\"&x;\"'/>", pre=xxe))
    w("bpl", f"xxe-param-{fmt}.{ext}", make("<trace value='1'/>", pre=param))
    w("bpl", f"doctype-plain-{fmt}.{ext}", make("<trace value='1'/>", pre="<!DOCTYPE process>\n"))
    w("bpl", f"undefined-entity-{fmt}.{ext}", make("<trace value='\"&nope;\"'/>"))
    w("bpl", f"charref-nul-{fmt}.{ext}", make("<trace value='\"&#0;\"'/>"))
    w("bpl", f"charref-huge-{fmt}.{ext}", make("<trace value='\"&#99999999999;\"'/>"))
    # Nesting around the 100-level limit (the limit is kept: 100 is refused).
    for depth in (98, 99, 100, 101, 1000):
        body = "<sequence>" * depth + "<trace value='1'/>" + "</sequence>" * depth
        w("bpl", f"deep-{depth}-{fmt}.{ext}", make(body))
    w("bpl", f"deep-unclosed-{fmt}.{ext}", make("<sequence>" * 3000))
    w("bpl", f"deep-scopes-{fmt}.{ext}", make("<scope name='S'>" * 120 + "<trace value='1'/>" + "<faulthandlers/></scope>" * 120))
    w("bpl", f"deep-flow-{fmt}.{ext}", make("<flow><sequence>" * 60 + call + "</sequence></flow>" * 60))
    w("bpl", f"attr-long-name-{fmt}.{ext}", make(f"<call name='{'N' * 5000}' target='T' async='0'><request type='Ens.Request'/></call>"))
    w("bpl", f"attr-many-{fmt}.{ext}", make("<trace value='1' " + " ".join(f"a{i}='x'" for i in range(1000)) + "/>"))
    w("bpl", f"attr-dup-{fmt}.{ext}", make("<trace value='1' value='2'/>"))
    w("bpl", f"siblings-300-{fmt}.{ext}", make("\n".join(f"<assign name='A{i}' property='context.X' value='{i}'/>" for i in range(300))))
    w("bpl", f"calls-100-{fmt}.{ext}", make("\n".join(f"<call name='C{i}' target='T' async='0'><request type='Ens.Request'/></call>" for i in range(100))))
    w("bpl", f"same-name-{fmt}.{ext}", make("\n".join("<call name='Same' target='T' async='0'><request type='Ens.Request'/></call>" for i in range(50))))
    w("bpl", f"ctl-in-name-{fmt}.{ext}", make("<call name='a&#27;[31mred&#10;line' target='T' async='0'><request type='Ens.Request'/></call>"))
    w("bpl", f"bidi-name-{fmt}.{ext}", make("<call name='\u202egnp.exe' target='T' async='0'><request type='Ens.Request'/></call>"))
    w("bpl", f"property-injection-{fmt}.{ext}", make("<assign property='context.X' value='1'/>").replace("<sequence>", "<context><property name='X\";DROP TABLE t;--' type='%String'/></context>\n<sequence>", 1))
    w("bpl", f"property-nul-{fmt}.{ext}", make("<trace value='1'/>").replace("<sequence>", "<context><property name='A&#0;B' type='%String'/></context>\n<sequence>", 1))
    w("bpl", f"property-space-{fmt}.{ext}", make("<trace value='1'/>").replace("<sequence>", "<context><property name='Re gion' type='%String'/></context>\n<sequence>", 1))
    w("bpl", f"properties-300-{fmt}.{ext}", make("<trace value='1'/>").replace("<sequence>", "<context>" + "".join(f"<property name='P{i}' type='%String'/>" for i in range(300)) + "</context>\n<sequence>", 1))
    w("bpl", f"cr-only-{fmt}.{ext}", make(call).replace("\n", "\r"))
    w("bpl", f"nul-bytes-{fmt}.{ext}", make(call).replace("<sequence>", "<seq\0uence>", 1))
    w("bpl", f"pi-and-comments-{fmt}.{ext}", make("<!--" + "-" * 1000 + "-->" + "<?pi x?>" * 200 + call))
    w("bpl", f"cdata-tricks-{fmt}.{ext}", make("<code><![CDATA[ ]]]]><![CDATA[> } </process> ]]></code>" + call))
    w("bpl", f"unterminated-comment-{fmt}.{ext}", make("<!-- never closed" + call))
    w("bpl", f"branch-loop-{fmt}.{ext}", make("<label name='L'/><branch name='B' label='L'/>"))
    w("bpl", f"case-bomb-{fmt}.{ext}", make("<switch name='S'>" + "".join(f"<case name='c{i}' condition='1'>{call}</case>" for i in range(300)) + "<default/></switch>"))

# Encodings: every seed format re-encoded, with and without a BOM; broken UTF-8.
base = bare(call)
for enc in ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"]:
    e = base.encode(enc)
    bom = "\ufeff".encode(enc)
    w("bpl", f"enc-{enc}-nobom.xml", e)
    w("bpl", f"enc-{enc}-bom.xml", bom + e)
    w("bpl", f"enc-{enc}-bom.cls", bom + udl(call).encode(enc))
w("bpl", "enc-latin1.xml", bare("<trace value='\"caf\xe9\"'/>").encode("latin-1"))
w("bpl", "enc-overlong.xml", bare("<trace value='x'/>").encode().replace(b"x'", b"\xc0\xafx'"))
w("bpl", "enc-surrogate.xml", bare("<trace value='x'/>").encode().replace(b"x'", b"\xed\xa0\x80'"))
w("bpl", "enc-truncated-char.xml", bare("<trace value='x'/>").encode().replace(b"x'", b"\xe2\x82'"))
w("bpl", "enc-bom-only.cls", b"\xef\xbb\xbf")
w("bpl", "enc-two-boms.xml", b"\xef\xbb\xbf\xef\xbb\xbf" + base.encode())
w("bpl", "enc-declared-utf16.xml", base.replace("<?xml version='1.0'?>", "<?xml version='1.0' encoding='UTF-16'?>").encode())
w("bpl", "empty.cls", b"")
w("bpl", "whitespace-only.cls", b" \n\t\r\n  ")
w("bpl", "binary.cls", bytes(rnd.randrange(256) for _ in range(4096)))
w("bpl", "zeros.xml", b"\0" * 4096)
# Hostile UDL headers (class-name validation inside the UDL reader is helper objs's; these
# only must not panic or hang here).
for i, name in enumerate(["Demo.Lo'an", "Demo Loan", "Demo.L\u00f6an", "Demo.\0Loan", "", "." * 300, "A" * 5000, "Demo.Loan;", "Demo..Loan", "%Demo.Loan"]):
    w("bpl", f"classname-{i:02}.cls", udl(call, cls=name))
w("bpl", "udl-no-closing-brace.cls", udl(call)[:-3])
w("bpl", "udl-xdata-twice.cls", udl(call).replace("XData BPL", "XData BPL\n{\n}\nXData BPL", 1))
w("bpl", "udl-braces-10000.cls", udl(call).replace("XData BPL", "{" * 10000 + "\nXData BPL", 1))
w("bpl", "export-two-bpl-classes.xml", export(call).replace("</Export>", export(call, cls="Demo.Other").split("<Export generator='IRIS' version='26'>", 1)[1]))
w("bpl", "export-nested-deep.xml", "<Export>" + "<Class name='X'>" * 2000)

# Thread-class files for verify-numbering: truncations and flips of real exports.
tseeds = []
for root, _, files in sorted(os.walk("fixtures/generated")):
    for f in sorted(files):
        if f.endswith(".cls") and "Thread" in f:
            tseeds.append((f, open(os.path.join(root, f), "rb").read()))
tseeds = tseeds[:4]
for f, b in tseeds:
    stem = f.replace(".cls", "")
    for i in range(10):
        w("thread", f"trunc-{stem}-{i}.cls", b[:(len(b) * (i + 1)) // 11])
    for i in range(10):
        m = bytearray(b)
        for _ in range(1 + i % 3):
            p = rnd.randrange(len(m))
            m[p:p + rnd.randrange(0, 5)] = rnd.choice([b"{", b"}", b"\"", b"/*", b"//", b"\r", b"\0", b"\xff", b"Method ", b"<"])
        w("thread", f"flip-{stem}-{i}.cls", bytes(m))
w("thread", "empty.cls", b"")
w("thread", "utf16.cls", tseeds[0][1].decode().encode("utf-16"))
w("thread", "utf32.cls", tseeds[0][1].decode().encode("utf-32"))
w("thread", "braces-open.cls", b"Class X.Thread1 Extends Ens.BP.Thread\n" + b"{" * 20000)
w("thread", "method-flood.cls", ("Class X.Thread1 Extends Ens.BP.Thread\n{\n" + "".join(f"Method S{i}() As %Status\n{{\n Set ..%NextState=\"S{i+1}\"\n Quit $$$OK\n}}\n" for i in range(300)) + "}\n").encode())
w("thread", "xml-bomb.xml", ("<?xml version='1.0'?>\n" + laughs + "<Export><Class name='X.Thread1'><Super>&lol9;</Super></Class></Export>").encode())

# Overrides files for plan --overrides on fixtures/changes/removed_wait_state.
ov = {
    "not-toml": "this is not toml = = =",
    "unknown-key": "[[map]]\nthread = 'Thread1'\nold = 'S6'\nnew = 'S4'\nbogus = 1\n",
    "unknown-section": "[[mapp]]\nthread = 'Thread1'\n",
    "bad-hash": "old_sha256 = 'xyz'\n",
    "hash-long": "old_sha256 = '" + "a" * 5000 + "'\n",
    "stale-hash": "old_sha256 = '" + "0" * 64 + "'\n",
    "wrong-type": "[[map]]\nthread = 1\nold = 'S6'\nnew = 'S4'\n",
    "missing-field": "[[map]]\nthread = 'Thread1'\n",
    "unknown-thread": "[[map]]\nthread = 'Thread99'\nold = 'S6'\nnew = 'S4'\n",
    "unknown-state": "[[map]]\nthread = 'Thread1'\nold = 'S999'\nnew = 'S4'\n",
    "ctl-in-state": "[[map]]\nthread = 'Thread1'\nold = \"S6\\u001b[2J\\n\"\nnew = 'S4'\n",
    "long-state": "[[map]]\nthread = 'Thread1'\nold = '" + "S" * 5000 + "'\nnew = 'S4'\n",
    "map-twice": "[[map]]\nthread = 'Thread1'\nold = 'S6'\nnew = 'S4'\n[[map]]\nthread = 'Thread1'\nold = 'S6'\nnew = 'S5'\n",
    "pin-unknown": "[[pin]]\nold = 'call \"Nope\"'\nnew = ''\n",
    "pin-bad-position": "[[pin]]\nold = 'call@99999999999999999999:1'\nnew = ''\n",
    "pin-garbage": "[[pin]]\nold = '@@@:::\"\"\"'\nnew = '\u0000'\n",
    "default-expression": "[[default]]\nproperty = 'Score'\nvalue = \"1; DROP TABLE x\"\n",
    "default-ctl": "[[default]]\nproperty = 'Score'\nvalue = \"'a\\u0001b'\"\n",
    "default-array": "[[default]]\nproperty = 'Score'\nvalue = [1, 2]\n",
    "default-long": "[[default]]\nproperty = 'Score'\nvalue = \"'" + "x" * 5000 + "'\"\n",
    "default-unknown-property": "[[default]]\nproperty = 'Nope'\nvalue = 1\n",
    "ack-unknown": "[[ack]]\ncode = 'BPM9999'\n",
    "ack-ctl": "[[ack]]\ncode = \"\\u0007\\u0000\"\n",
    "deep-array": "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-inline-table": "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
    "unterminated-string": "old_sha256 = \"abc\n",
    "multiline-bomb": "old_sha256 = '''" + "\n" * 20000,
    "inline-maps-one-line": "map = [" + ", ".join("{thread='Thread1', old='S6', new='S4'}" for _ in range(300)) + "]\n",
    "cr-only": "[[map]]\rthread = 'Thread1'\rold = 'S6'\rnew = 'S4'\r",
    "empty": "",
}
for k, v in ov.items():
    w("overrides", k + ".toml", v)
w("overrides", "utf16.toml", "[[ack]]\ncode = 'BPM0101'\n".encode("utf-16"))
w("overrides", "utf32.toml", "[[ack]]\ncode = 'BPM0101'\n".encode("utf-32"))
w("overrides", "latin1.toml", "[[ack]]\ncode = 'BPM0101'\nreason = 'caf\xe9'\n".encode("latin-1"))
w("overrides", "binary.toml", bytes(rnd.randrange(256) for _ in range(2048)))

# REV:path sources (run in a git repository made at test time).
revs = ["HEAD:missing.cls", "HEAD:", ":x.cls", "HEAD~99999:x.cls", "-x:y.cls", "--upload-pack=touch /tmp/pwned:x.cls",
        "HEAD:dir", "HEAD:../outside.cls", "HEAD:/etc/passwd", "nope:x.cls", "HEAD:big.cls", "HEAD:link.cls",
        "HEAD:" + "a/" * 2000 + "x.cls", "H" * 5000 + ":x.cls", "HEAD:x\\x1b[31m.cls", "HEAD:\\x0a.cls",
        "HEAD^{tree}:x.cls", "HEAD:@{-1}", "HEAD:ok.cls", "HEAD:./ok.cls"]
with open(os.path.join(out, "rev.txt"), "w") as f:
    f.write("\n".join(revs) + "\n")
PY

# Migration folders: a real one from the binary, then edited.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
c=fixtures/changes/removed_wait_state_mapped
target/debug/bplmigrate plan $c/old.cls $c/new.cls --overrides $c/overrides.toml --out "$tmp" >/dev/null
good=$(echo "$tmp"/0001_*)
sums=CHECKSUMS.sha256
mk() { rm -rf "$OUT/folder/$1"; cp -r "$good" "$OUT/folder/$1"; }
resum() { # rewrite the checksum of plan.json so the folder verifies and the plan itself is read
  local d=$OUT/folder/$1 h
  h=$(python3 -c 'import sys,hashlib; b=open(sys.argv[1],"rb").read(); b=b[3:] if b.startswith(b"\xef\xbb\xbf") else b; print(hashlib.sha256(b.replace(b"\r\n",b"\n")).hexdigest())' "$d/plan.json")
  sed -i "s/^[0-9a-f]*  plan.json$/$h  plan.json/" "$d/$sums"
}
mk intact
mk edited-plan; sed -i 's/"S6"/"S5"/' "$OUT/folder/edited-plan/plan.json"
mk edited-sql; echo "DELETE FROM x;" >> "$OUT/folder/edited-sql/apply.postgres.sql" 2>/dev/null || echo "DELETE FROM x;" >> "$(ls "$OUT"/folder/edited-sql/*.sql | head -1)"
mk added-file; echo x > "$OUT/folder/added-file/extra.sql"
mk removed-file; rm "$OUT/folder/removed-file/README.md"
mk removed-sums; rm "$OUT/folder/removed-sums/$sums"
mk subdir; mkdir "$OUT/folder/subdir/nested"; echo x > "$OUT/folder/subdir/nested/f"
mk sums-garbage; printf 'garbage\n' > "$OUT/folder/sums-garbage/$sums"
mk sums-dotdot; echo "$(printf '0%.0s' $(seq 64))  ../../etc/passwd" >> "$OUT/folder/sums-dotdot/$sums"
mk sums-absolute; echo "$(printf '0%.0s' $(seq 64))  /etc/passwd" >> "$OUT/folder/sums-absolute/$sums"
mk sums-duplicate; tail -1 "$OUT/folder/sums-duplicate/$sums" >> "$OUT/folder/sums-duplicate/$sums"
mk sums-crlf; sed -i 's/$/\r/' "$OUT/folder/sums-crlf/$sums"
# Every byte value, repeated to 3000 bytes: binary, and the same on every run.
mk sums-binary; { for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done; done; } | head -c 3000 > "$OUT/folder/sums-binary/$sums" || true
mk sums-ctl-name; printf '%s  a\033[2Jb\n' "$(printf '0%.0s' $(seq 64))" >> "$OUT/folder/sums-ctl-name/$sums"
p=$OUT/folder
for v in '{}' '[]' 'null' '"x"' '{"schema_version": 99}' '{"schema_version": 1}' \
         "$(python3 -c 'print("["*10000 + "]"*10000)')" \
         "$(python3 -c 'print("{\"a\":"*200 + "1" + "}"*200)')" \
         "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["threads"][0]["states"][0]["old"]="S1\u0000\u001b"; print(json.dumps(d))' "$good/plan.json")" \
         "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["context_table"]="x\";DROP TABLE y;--.t"; print(json.dumps(d))' "$good/plan.json")" \
         "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["threads"][0]["old_table"]="s."+"t"*5000; print(json.dumps(d))' "$good/plan.json")" \
         "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["context_properties"]=[{"name":"P\"x","change":"added","old_type":None,"new_type":"%String","default":"1; DROP"}]; d["verdict"]="migratable"; print(json.dumps(d))' "$good/plan.json")" \
         "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["threads"]=d["threads"]*20; print(json.dumps(d))' "$good/plan.json")" \
         "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["plan_id"]="../../x"; print(json.dumps(d))' "$good/plan.json")" \
         "$(head -c 2000 "$good/plan.json")"; do
  n=$(( ${n:-0} + 1 )); name=$(printf 'plan-json-%02d' "$n")
  mk "$name"; printf '%s' "$v" > "$p/$name/plan.json"; resum "$name"
done
mk plan-json-utf16; iconv -f utf-8 -t utf-16 "$good/plan.json" > "$p/plan-json-utf16/plan.json"; resum plan-json-utf16
mk plan-json-bom; { printf '\xef\xbb\xbf'; cat "$good/plan.json"; } > "$p/plan-json-bom/plan.json"; resum plan-json-bom
# Every input a fuzzer crashed on stays in the corpus (thread-class reader crashes as thread/).
for f in fuzz/regressions/thread_class_reader/crash-*; do
  [ -e "$f" ] && cp "$f" "$OUT/thread/fuzz-crash-$(basename "$f" | cut -c7-14).cls"
done
count=$(find "$OUT" -type f -path '*/bpl/*' -o -type f -path '*/thread/*' -o -type f -path '*/overrides/*' | wc -l)
echo "fixtures/hostile: $count files, $(ls "$OUT/folder" | wc -l) folders, $(wc -l < "$OUT/rev.txt") REV:path sources; $(du -sh "$OUT" | cut -f1) on disk"
