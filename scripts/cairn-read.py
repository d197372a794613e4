#!/usr/bin/env python3
"""Reads a cairn repository without cairn: a reference reader of the format (docs/recovery.md).

    cairn-read.py REPO list                     backups, oldest first
    cairn-read.py REPO show ID                  the manifest as JSON
    cairn-read.py REPO cat ID COLLECTION        a collection's data stream to stdout

REPO is a repository folder (or an extracted .cairn archive: `tar xf x.cairn -C dir`). An
encrypted repository's password is read from CAIRN_PASSWORD_FILE (first line) or CAIRN_PASSWORD.

Needs: Python 3.8+, the `zstd` command (apt install zstd), and for encrypted repositories the
`cryptography` package (apt install python3-cryptography). It checks what cairn checks: pack
hashes, chunk ids, authentication tags. It is deliberately short and slow; it is a map of the
format (docs/repository-format.md), not a tool to restore terabytes with.
"""
import base64
import gzip
import hashlib
import hmac
import json
import os
import subprocess
import sys
import unicodedata

SEALED_MAGIC = b"CRNE\x01"


def die(message):
    sys.stderr.write(f"cairn-read: {message}\n")
    sys.exit(1)


def zstd_decompress(data):
    r = subprocess.run(["zstd", "-dcq"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if r.returncode != 0:
        die(f"zstd failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def hkdf_sha256(secret, salt, info, length):
    """RFC 5869, as node:crypto hkdfSync('sha256', ...)."""
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def read_password():
    """CAIRN_PASSWORD_FILE (its first line), else CAIRN_PASSWORD, as cairn reads them."""
    path = os.environ.get("CAIRN_PASSWORD_FILE")
    if path:
        with open(path, "r", encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    return os.environ.get("CAIRN_PASSWORD") or die("encrypted repository: set CAIRN_PASSWORD_FILE or CAIRN_PASSWORD")


class Repository:
    def __init__(self, root):
        self.root = root
        with open(os.path.join(root, "config"), "rb") as f:
            self.config = json.loads(f.read())
        self.data_key = None
        self.id_key = None
        if self.config["encryption"]["algorithm"] != "none":
            self.unlock(read_password())

    def unlock(self, password):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # only needed when encrypted

        repo_id = self.config["id"]
        folder = os.path.join(self.root, "keys")
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as f:
                slot = json.loads(f.read())
            kdf = slot["kdf"]
            # cairn normalises passwords to NFC before scrypt.
            kek = hashlib.scrypt(unicodedata.normalize("NFC", password).encode("utf-8"), salt=base64.b64decode(kdf["salt"]),
                                 n=kdf["N"], r=kdf["r"], p=kdf["p"], maxmem=256 * kdf["N"] * kdf["r"] * kdf["p"] + 2**20, dklen=32)
            sealed = base64.b64decode(slot["secret"])
            try:
                secret = self.unseal_with(AESGCM(kek), sealed, f"cairn key slot v1 {repo_id} {slot['id']}")
            except Exception:
                continue  # another password's slot
            salt = repo_id.encode("utf-8")
            self.data_key = AESGCM(hkdf_sha256(secret, salt, b"cairn data key v1", 32))
            self.id_key = hkdf_sha256(secret, salt, b"cairn chunk id key v1", 32)
            return
        die("wrong password: it opens no key slot")

    @staticmethod
    def unseal_with(aead, sealed, aad):
        if not sealed.startswith(SEALED_MAGIC):
            raise ValueError("not a sealed object")
        nonce = sealed[5:17]
        return aead.decrypt(nonce, sealed[17:], aad.encode("utf-8"))

    def get(self, key):
        with open(os.path.join(self.root, *key.split("/")), "rb") as f:
            data = f.read()
        if self.data_key is None or key == "config" or key.startswith("keys/"):
            return data
        try:
            return self.unseal_with(self.data_key, data, key)
        except Exception:  # InvalidTag, or not a sealed object at all
            die(f"{key} fails authentication: it was altered or damaged")

    def document(self, key):
        """Manifests and index documents: zstd-compressed JSON (or plain JSON)."""
        data = self.get(key)
        return json.loads(zstd_decompress(data) if data[:4] == b"\x28\xb5\x2f\xfd" else data)

    def chunk_id(self, raw):
        if self.id_key is not None:
            return hmac.new(self.id_key, raw, hashlib.sha256).hexdigest()
        return hashlib.sha256(raw).hexdigest()

    def list(self, folder):
        base = os.path.join(self.root, folder)
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith("."):
                    yield os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")

    def manifests(self):
        found = [self.document(key) for key in self.list("backups")]
        return sorted(found, key=lambda m: (m["createdAt"], m["id"]))

    def index(self):
        """chunk id -> (pack id, offset, length, raw length, compression), superseded documents left out."""
        docs = {key.split("/")[-1]: self.document(key) for key in self.list("index")}
        superseded = {s for d in docs.values() for s in d.get("supersedes", [])}
        chunks = {}
        for index_id, doc in docs.items():
            if index_id in superseded:
                continue
            for pack in doc["packs"]:
                for b in pack["blobs"]:
                    chunks[b["id"]] = (pack["id"], b["offset"], b["length"], b["rawLength"], b["compression"])
        return chunks

    def cat(self, backup_id, collection, out):
        manifest = self.document(f"backups/{backup_id}")
        entry = next((c for c in manifest["collections"] if c["name"] == collection), None) or die(f"no collection {collection!r}")
        index = self.index()
        cached = (None, None)
        for chunk in entry["chunks"]:
            pack_id, offset, length, raw_length, compression = index.get(chunk) or die(f"chunk {chunk} is in no index")
            if cached[0] != pack_id:
                pack = self.get(f"data/{pack_id[:2]}/{pack_id}")
                if hashlib.sha256(pack).hexdigest() != pack_id:
                    die(f"pack {pack_id} does not match its name")
                cached = (pack_id, pack)
            stored = cached[1][offset:offset + length]
            raw = {"none": lambda b: b, "zstd": zstd_decompress, "gzip": gzip.decompress}[compression](stored)
            if len(raw) != raw_length or self.chunk_id(raw) != chunk:
                die(f"chunk {chunk} does not match its id")
            out.write(raw)


def main(argv):
    if len(argv) < 2:
        die("usage: cairn-read.py REPO list | show ID | cat ID COLLECTION")
    repo = Repository(argv[0])
    command = argv[1]
    if command == "list":
        for m in repo.manifests():
            print(f"{m['id']}\t{m['createdAt']}\t{m['source']['kind']}\t{len(m['collections'])} collections")
    elif command == "show" and len(argv) == 3:
        print(json.dumps(repo.document(f"backups/{argv[2]}"), indent=2))
    elif command == "cat" and len(argv) == 4:
        repo.cat(argv[2], argv[3], sys.stdout.buffer)
    else:
        die("usage: cairn-read.py REPO list | show ID | cat ID COLLECTION")


if __name__ == "__main__":
    main(sys.argv[1:])
