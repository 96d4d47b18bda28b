//! The adb key formats: `adbkey.pub` (Android's `RSAPublicKey` struct in base64, then
//! ` user@host`), the PKCS#8 PEM private key `adb` reads as `adbkey`, and the check of an AUTH
//! signature over adbd's 20-byte token.
