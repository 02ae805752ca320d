package seal

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpenAndRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring mode %v, want 0600", st.Mode().Perm())
	}
	id1, sealed, err := k1.Seal([]byte("s3cret-value"), []byte("p1/TOKEN"))
	if err != nil || id1 != "k1" {
		t.Fatalf("seal: %v %q", err, id1)
	}
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("the sealed value contains the plain text")
	}
	if _, err := k1.Open(id1, sealed, []byte("p2/TOKEN")); err == nil {
		t.Fatal("a sealed value opened under another context")
	}
	// Rotation: add a key; old values still open, new ones use the new key.
	b, _ := os.ReadFile(path)
	k2, err := Parse(string(b) + "k2:" + strings.Repeat("A", 43) + "=\n")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := k2.Open(id1, sealed, []byte("p1/TOKEN")); err != nil || string(v) != "s3cret-value" {
		t.Fatalf("open after rotation: %q %v", v, err)
	}
	if id2, _, _ := k2.Seal([]byte("x"), nil); id2 != "k2" {
		t.Fatalf("new values sealed with %q, want k2", id2)
	}
	if _, err := Parse("k1:short"); err == nil {
		t.Fatal("a malformed keyring was accepted")
	}
}
