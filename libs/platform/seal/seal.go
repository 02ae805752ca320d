// Package seal encrypts project secrets at rest with AES-256-GCM under named keys, so
// that keys can be rotated: every sealed value records the id of the key that sealed it,
// new values are sealed with the newest key, and old values open with the key they name.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Keyring holds the keys by id; the last one loaded seals new values.
type Keyring struct {
	keys    map[string]cipher.AEAD
	current string
}

// Parse reads a keyring: one key per line, "ID:BASE64(32 bytes)"; blank lines and lines
// starting with # are ignored; the last key is the current one.
func Parse(text string) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, b64, ok := strings.Cut(line, ":")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if !ok || id == "" || err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("secrets keyring line %d: want ID:BASE64 of 32 random bytes", i+1)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.keys[id], k.current = aead, id
	}
	if k.current == "" {
		return nil, errors.New("secrets keyring: no key")
	}
	return k, nil
}

// LoadOrCreate reads the keyring in path, creating it (0600) with one new key when it
// does not exist (the embedded default's behaviour).
func LoadOrCreate(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		text := "# SimpleCI secrets keyring: ID:BASE64; the last key seals new secrets.\nk1:" + base64.StdEncoding.EncodeToString(raw) + "\n"
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("write secrets keyring: %w", err)
		}
		return Parse(text)
	}
	if err != nil {
		return nil, fmt.Errorf("read secrets keyring: %w", err)
	}
	return Parse(string(b))
}

// Seal encrypts value, binding it to context (e.g. project id and secret name) so that a
// sealed value copied to another row does not open there. It returns the key id and the
// nonce followed by the ciphertext.
func (k *Keyring) Seal(value, context []byte) (keyID string, sealed []byte, err error) {
	aead := k.keys[k.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return k.current, aead.Seal(nonce, nonce, value, context), nil
}

// Open decrypts what Seal returned.
func (k *Keyring) Open(keyID string, sealed, context []byte) ([]byte, error) {
	aead, ok := k.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("secret sealed with key %q, which is not in the keyring", keyID)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed secret too short")
	}
	n := aead.NonceSize()
	v, err := aead.Open(nil, sealed[:n], sealed[n:], context)
	if err != nil {
		return nil, fmt.Errorf("open secret: %w", err)
	}
	return v, nil
}
