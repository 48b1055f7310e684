/**
 * The Cryptoki numbers the token back end uses (PKCS#11 v2.40; the EdDSA ones are v3.0). They are
 * fixed by the standard, so they are written here rather than read from the binding: the binding
 * is loaded lazily, and its list lacks the v3.0 EdDSA names.
 */
export const CKA = {
  CLASS: 0x0,
  TOKEN: 0x1,
  PRIVATE: 0x2,
  LABEL: 0x3,
  VALUE: 0x11,
  CERTIFICATE_TYPE: 0x80,
  SUBJECT: 0x101,
  KEY_TYPE: 0x100,
  ID: 0x102,
  SENSITIVE: 0x103,
  SIGN: 0x108,
  VERIFY: 0x10a,
  MODULUS: 0x120,
  MODULUS_BITS: 0x121,
  PUBLIC_EXPONENT: 0x122,
  VALUE_LEN: 0x161,
  EXTRACTABLE: 0x162,
  EC_PARAMS: 0x180,
  EC_POINT: 0x181,
  ALWAYS_AUTHENTICATE: 0x202,
} as const;

export const CKO = { CERTIFICATE: 0x1, PUBLIC_KEY: 0x2, PRIVATE_KEY: 0x3, SECRET_KEY: 0x4 } as const;

export const CKK = { RSA: 0x0, EC: 0x3, GENERIC_SECRET: 0x10, EC_EDWARDS: 0x40 } as const;

export const CKC_X_509 = 0x0;

export const CKM = {
  RSA_PKCS_KEY_PAIR_GEN: 0x0,
  SHA256_RSA_PKCS: 0x40,
  GENERIC_SECRET_KEY_GEN: 0x350,
  SHA256_HMAC: 0x251,
  EC_KEY_PAIR_GEN: 0x1040,
  ECDSA: 0x1041,
  ECDSA_SHA256: 0x1044,
  ECDSA_SHA384: 0x1045,
  EC_EDWARDS_KEY_PAIR_GEN: 0x1055,
  EDDSA: 0x1057,
} as const;

export const CKF = {
  /** CK_SESSION_INFO / C_OpenSession flags. */
  RW_SESSION: 0x2,
  SERIAL_SESSION: 0x4,
  /** CK_TOKEN_INFO flags. */
  LOGIN_REQUIRED: 0x4,
  TOKEN_INITIALIZED: 0x400,
  /** CK_MECHANISM_INFO flag. */
  SIGN: 0x800,
  /** CK_C_INITIALIZE_ARGS flag: the module may lock with the operating system's primitives. */
  OS_LOCKING_OK: 0x2,
} as const;

export const CKU_USER = 0x1;

export const CKR = {
  ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_TYPE_INVALID: 0x12,
  DEVICE_ERROR: 0x30,
  DEVICE_REMOVED: 0x32,
  KEY_HANDLE_INVALID: 0x60,
  OBJECT_HANDLE_INVALID: 0x82,
  PIN_INCORRECT: 0xa0,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_HANDLE_INVALID: 0xb3,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  CRYPTOKI_NOT_INITIALIZED: 0x190,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
} as const;
