package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/berthproject/berth/errdefs"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// PEM block types of keys, as cosign writes them and containers/image
// reads them.
const (
	pemEncryptedKey       = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemEncryptedCosignKey = "ENCRYPTED COSIGN PRIVATE KEY" // older cosign
	pemPublicKey          = "PUBLIC KEY"
)

// ErrWrongPassword is a private key that the password does not open.
var ErrWrongPassword = errors.New("wrong password for the private key")

// GenerateKey makes an ECDSA P-256 key pair: the private key encrypted
// with password (scrypt and NaCl secretbox, as cosign's), both as PEM.
// The unencrypted key exists only in memory.
func GenerateKey(password []byte) (privatePEM, publicPEM []byte, err error) {
	if len(password) == 0 {
		return nil, nil, fmt.Errorf("a private key needs a password: %w", errdefs.ErrInvalidArgument)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	defer clear(der)
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, nil, fmt.Errorf("encrypt the private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedKey, Bytes: enc}),
		pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: pub}), nil
}

// PrivateKey is a private key opened for signing.
type PrivateKey struct {
	key *ecdsa.PrivateKey
	id  string
}

// ID is the key's ID: that of its public key.
func (k *PrivateKey) ID() string { return k.id }

// Public is the public half.
func (k *PrivateKey) Public() *PublicKey {
	return &PublicKey{key: &k.key.PublicKey, id: k.id}
}

// sign signs the SHA-256 of data (ASN.1 DER signature, as cosign's).
func (k *PrivateKey) sign(data []byte) ([]byte, error) {
	h := sha256.Sum256(data)
	return ecdsa.SignASN1(rand.Reader, k.key, h[:])
}

// ParsePrivateKey opens an encrypted private key. The error never holds
// the key or the password.
func ParsePrivateKey(b, password []byte) (*PrivateKey, error) {
	k, err := parsePrivateKey(b, password)
	if err != nil && err != ErrWrongPassword {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return k, err
}

func parsePrivateKey(b, password []byte) (*PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("not PEM: %w", errdefs.ErrInvalidArgument)
	}
	if blk.Type != pemEncryptedKey && blk.Type != pemEncryptedCosignKey {
		return nil, fmt.Errorf("a PEM %q block, not an encrypted sigstore private key: %w", blk.Type, errdefs.ErrInvalidArgument)
	}
	der, err := encrypted.Decrypt(blk.Bytes, password)
	if err != nil {
		if err.Error() == "encrypted: decryption failed" { // the package has no sentinel for it
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("the encrypted key does not parse: %w", errdefs.ErrInvalidArgument)
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS #8 key: %w", errdefs.ErrInvalidArgument)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, berth signs with ECDSA keys: %w", k, errdefs.ErrNotImplemented)
	}
	id, err := keyID(&ek.PublicKey)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{key: ek, id: id}, nil
}

// LoadPrivateKey reads and opens a private key file.
func LoadPrivateKey(path string, password []byte) (*PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	k, err := parsePrivateKey(b, password)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

// PublicKey is a key that verifies signatures.
type PublicKey struct {
	key *ecdsa.PublicKey
	id  string
}

// ID is the key's ID: the hex SHA-256 of its PKIX encoding.
func (k *PublicKey) ID() string { return k.id }

// Short is the ID's first 16 hex digits, for tables.
func (k *PublicKey) Short() string { return k.id[:16] }

// PEM is the key as a PEM public key.
func (k *PublicKey) PEM() []byte {
	der, _ := x509.MarshalPKIXPublicKey(k.key)
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der})
}

func (k *PublicKey) verify(data, sig []byte) bool {
	h := sha256.Sum256(data)
	return ecdsa.VerifyASN1(k.key, h[:], sig)
}

// ParsePublicKey reads a PEM public key (PKIX).
func ParsePublicKey(b []byte) (*PublicKey, error) {
	k, err := parsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return k, nil
}

func parsePublicKey(b []byte) (*PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("not PEM: %w", errdefs.ErrInvalidArgument)
	}
	if blk.Type != pemPublicKey {
		return nil, fmt.Errorf("a PEM %q block, not a public key: %w", blk.Type, errdefs.ErrInvalidArgument)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, berth verifies ECDSA keys: %w", k, errdefs.ErrNotImplemented)
	}
	id, err := keyID(ek)
	if err != nil {
		return nil, err
	}
	return &PublicKey{key: ek, id: id}, nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (*PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	k, err := parsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

func keyID(k crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:]), nil
}
