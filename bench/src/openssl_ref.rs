//! OpenSSL doing the same per-packet work as svrd's seal and open, as the benchmark anchor.
//!
//! The `openssl` crate re-keys HMAC for every `Signer`, which would charge OpenSSL two extra
//! SHA-512 compressions per packet that svrd does not pay. This module keeps one
//! `HMAC_CTX` per key and re-initialises it with a null key, which OpenSSL documents as
//! reusing the keyed state; that needs the raw `openssl-sys` calls.
#![allow(unsafe_code, reason = "HMAC_CTX reuse is only reachable through openssl-sys")]

use foreign_types::ForeignTypeRef;
use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use openssl::md::{Md, MdRef};

/// An HMAC key whose keyed state OpenSSL keeps between messages.
pub struct OpensslHmac {
    ctx: *mut openssl_sys::HMAC_CTX,
    tag_len: usize,
}

impl OpensslHmac {
    /// Keys HMAC with SHA-384 (`tag_len` 48) or SHA-512 (64).
    pub fn new(key: &[u8], tag_len: usize) -> Result<OpensslHmac, ErrorStack> {
        let md: &MdRef = if tag_len == 48 { Md::sha384() } else { Md::sha512() };
        // SAFETY: HMAC_CTX_new has no preconditions; a null result is checked below.
        let ctx = unsafe { openssl_sys::HMAC_CTX_new() };
        if ctx.is_null() {
            return Err(ErrorStack::get());
        }
        let hmac = OpensslHmac { ctx, tag_len };
        // SAFETY: ctx is a live HMAC_CTX owned by `hmac`; key points to key.len() readable
        // bytes; md is a static EVP_MD from OpenSSL.
        let ok = unsafe {
            openssl_sys::HMAC_Init_ex(
                hmac.ctx,
                key.as_ptr().cast(),
                key.len() as i32,
                md.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        if ok != 1 {
            return Err(ErrorStack::get());
        }
        Ok(hmac)
    }

    /// Computes the tag of `message` into `out[..tag_len]`.
    pub fn tag(&mut self, message: &[u8], out: &mut [u8; 64]) -> Result<(), ErrorStack> {
        let mut len = 0u32;
        // SAFETY: ctx was keyed in `new`; a null key with a null md reuses that key and hash.
        // message and out are valid for their lengths, and out holds the largest digest.
        let ok = unsafe {
            openssl_sys::HMAC_Init_ex(
                self.ctx,
                std::ptr::null(),
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            ) == 1
                && openssl_sys::HMAC_Update(self.ctx, message.as_ptr(), message.len()) == 1
                && openssl_sys::HMAC_Final(self.ctx, out.as_mut_ptr(), &mut len) == 1
        };
        if !ok || len as usize != self.tag_len {
            return Err(ErrorStack::get());
        }
        Ok(())
    }
}

impl Drop for OpensslHmac {
    fn drop(&mut self) {
        // SAFETY: ctx came from HMAC_CTX_new and is freed exactly once, here.
        unsafe { openssl_sys::HMAC_CTX_free(self.ctx) };
    }
}

/// The reference sealer: IV from the sequence number by one AES-ECB block, AES-256-CBC with
/// PKCS#7 padding, then HMAC over the ciphertext and sequence field, as svrd does.
pub struct OpensslSealer {
    ecb: CipherCtx,
    cbc: CipherCtx,
    decrypt: CipherCtx,
    hmac: OpensslHmac,
}

impl OpensslSealer {
    /// Expands the keys once.
    pub fn new(aes_key: &[u8; 32], mac_key: &[u8], tag_len: usize) -> Result<Self, ErrorStack> {
        let mut ecb = CipherCtx::new()?;
        ecb.encrypt_init(Some(Cipher::aes_256_ecb()), Some(aes_key), None)?;
        ecb.set_padding(false);
        let cbc_cipher: &CipherRef = Cipher::aes_256_cbc();
        let mut cbc = CipherCtx::new()?;
        cbc.encrypt_init(Some(cbc_cipher), Some(aes_key), Some(&[0; 16]))?;
        let mut decrypt = CipherCtx::new()?;
        decrypt.decrypt_init(Some(cbc_cipher), Some(aes_key), Some(&[0; 16]))?;
        Ok(OpensslSealer { ecb, cbc, decrypt, hmac: OpensslHmac::new(mac_key, tag_len)? })
    }

    fn iv(&mut self, number: u64) -> Result<[u8; 16], ErrorStack> {
        let mut block = [0u8; 16];
        block[8..].copy_from_slice(&number.to_be_bytes());
        let mut iv = [0u8; 32];
        let n = self.ecb.cipher_update(&block, Some(&mut iv))?;
        debug_assert_eq!(n, 16);
        let mut out = [0u8; 16];
        out.copy_from_slice(&iv[..16]);
        Ok(out)
    }

    /// Seals `plain` into `out`; returns the sealed length.
    pub fn seal(&mut self, number: u64, plain: &[u8], out: &mut [u8]) -> Result<usize, ErrorStack> {
        let iv = self.iv(number)?;
        self.cbc.encrypt_init(None, None, Some(&iv))?;
        let mut n = self.cbc.cipher_update(plain, Some(out))?;
        n += self.cbc.cipher_final(&mut out[n..])?;
        out[n..n + 8].copy_from_slice(&number.to_be_bytes());
        let mut tag = [0u8; 64];
        self.hmac.tag(&out[..n + 8], &mut tag)?;
        let tag_len = self.hmac.tag_len;
        out[n + 8..n + 8 + tag_len].copy_from_slice(&tag[..tag_len]);
        Ok(n + 8 + tag_len)
    }

    /// Verifies and decrypts a sealed packet into `out`; returns the plaintext length, or
    /// `None` when the tag does not match.
    pub fn open(&mut self, sealed: &[u8], out: &mut [u8]) -> Result<Option<usize>, ErrorStack> {
        let tag_len = self.hmac.tag_len;
        let body = sealed.len() - 8 - tag_len;
        let mut tag = [0u8; 64];
        self.hmac.tag(&sealed[..body + 8], &mut tag)?;
        if !openssl::memcmp::eq(&tag[..tag_len], &sealed[body + 8..]) {
            return Ok(None);
        }
        let mut number = [0u8; 8];
        number.copy_from_slice(&sealed[body..body + 8]);
        let iv = self.iv(u64::from_be_bytes(number))?;
        self.decrypt.decrypt_init(None, None, Some(&iv))?;
        let mut n = self.decrypt.cipher_update(&sealed[..body], Some(out))?;
        n += self.decrypt.cipher_final(&mut out[n..])?;
        Ok(Some(n))
    }
}
