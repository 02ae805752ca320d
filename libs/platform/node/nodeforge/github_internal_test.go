package nodeforge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/platform/node"
)

// A usable token file makes the github forge; a bad one stops the start with a
// message naming the flag and never the token.
func TestOpenGitHub(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("token", "ghp_secret_value\n")
	if f, err := openGitHub(node.GitHub{TokenFile: good}, nil); err != nil || f.Name() != "github" {
		t.Fatalf("good token file: %v", err)
	}
	if !(node.GitHub{TokenFile: good}).Enabled() || (node.GitHub{}).Enabled() {
		t.Error("Enabled: want true with a flag set, false without")
	}
	for name, gh := range map[string]node.GitHub{
		"empty":         {TokenFile: write("empty", " \n")},
		"missing":       {TokenFile: filepath.Join(dir, "missing")},
		"two tokens":    {TokenFile: write("two", "ghp_secret_value other\n")},
		"too large":     {TokenFile: write("big", strings.Repeat("x", maxTokenFile+1))},
		"bad API URL":   {APIURL: "ftp://ghe.example/"},
		"web with user": {URL: "https://ghp_secret_value@ghe.example/"},
	} {
		_, err := openGitHub(gh, nil)
		if err == nil || !strings.Contains(err.Error(), "--github") {
			t.Errorf("%s: err = %v, want one naming the flag", name, err)
			continue
		}
		if strings.Contains(err.Error(), "ghp_secret_value") {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
}
