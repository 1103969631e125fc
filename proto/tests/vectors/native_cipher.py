#!/usr/bin/env python3
"""Known answers for the native cipher, computed independently of mosh-proto
with Python's `cryptography` package (OpenSSL underneath): AES-256-GCM test
cases 13-15 of McGrew & Viega's GCM specification (also NIST's), one whole
mosh datagram under GCM, and the HKDF-SHA256 traffic-key derivation over the
RFC 7748 X25519 test keys. proto/src/crypto.rs and proto/src/cipher.rs hold
the printed values. Run: python3 proto/tests/vectors/native_cipher.py"""
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes, serialization
import struct
h=bytes.fromhex
# McGrew-Viega GCM test cases 13-15 (AES-256)
print("tc13", AESGCM(bytes(32)).encrypt(bytes(12), b"", None).hex())
print("tc14", AESGCM(bytes(32)).encrypt(bytes(12), bytes(16), None).hex())
k15=h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
p15=h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
print("tc15", AESGCM(k15).encrypt(h("cafebabefacedbaddecaf888"), p15, None).hex())
# whole mosh datagram: key 0..31, ToClient seq 1
key=bytes(range(32)); tail=struct.pack(">Q", (1<<63)|1)
pt=h("0102ffff00000000000000078000"+b"hello".hex())
print("dgram", (tail+AESGCM(key).encrypt(bytes(4)+tail, pt, None)).hex())
# derivation
a=X25519PrivateKey.from_private_bytes(h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
b=X25519PrivateKey.from_private_bytes(h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
raw=lambda k: k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
apub, bpub = raw(a), raw(b)
shared=a.exchange(b.public_key())
print("apub", apub.hex()); print("bpub", bpub.hex()); print("shared", shared.hex())
boot=bytes(range(16))
label=b"mosh-daemon aes-256-gcm+x25519 traffic keys v1"
for epoch in (1,2):
    info=label+struct.pack(">Q",epoch)+apub+bpub
    okm=HKDF(algorithm=hashes.SHA256(), length=64, salt=boot, info=info).derive(shared)
    print("epoch", epoch, "c2s", okm[:32].hex(), "s2c", okm[32:].hex())
