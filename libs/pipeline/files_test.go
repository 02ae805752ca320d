package pipeline

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFilesSteps(t *testing.T) {
	src := `{"steps": [
  {"name": "Node modules", "type": "cache-files", "key": "deps-{{ context.branch }}", "fileNames": ["node_modules/**", "./a/b/"],
   "restoreKeys": ["deps-", "d-{{ context.sha }}"], "downloadPath": "sub/./x", "expiry": "7d"},
  {"name": "Build output", "type": "store-files", "key": "dist-{{context.sha}}", "fileNames": ["dist/**", "coverage.txt"], "expiry": "12h"},
  {"name": "Use", "run": "ls"}]}`
	pl, err := Parse("p.json", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c, s := pl.Steps[0], pl.Steps[1]
	if c.Type != TypeCacheFiles || s.Type != TypeStoreFiles || pl.Steps[2].Type != "" || pl.Steps[2].Files != nil {
		t.Fatalf("types %q %q %q", c.Type, s.Type, pl.Steps[2].Type)
	}
	if got := c.Files.FileNames; !slices.Equal(got, []string{"node_modules/**", "a/b"}) {
		t.Errorf("fileNames %q", got)
	}
	if c.Files.DownloadPath != "sub/x" || c.Files.Expiry != 7*24*time.Hour || s.Files.Expiry != 12*time.Hour {
		t.Errorf("downloadPath %q expiry %v %v", c.Files.DownloadPath, c.Files.Expiry, s.Files.Expiry)
	}
	v := Vars{Context: map[string]any{"branch": "feature/x", "sha": "abc"}}
	key, restore, err := c.Files.Keys(c.Name, v)
	if err != nil || key != "deps-feature/x" || !slices.Equal(restore, []string{"deps-", "d-abc"}) {
		t.Errorf("Keys = %q %q %v", key, restore, err)
	}
	// A key that renders empty is the step's error, naming the field.
	_, _, err = c.Files.Keys(c.Name, Vars{Context: map[string]any{"branch": "", "sha": "abc"}})
	if err != nil {
		t.Errorf("deps- is a valid key: %v", err)
	}
	pl, err = Parse("p.json", []byte(`{"steps": [{"name": "a", "type": "cache-files", "key": "{{ context.branch }}", "fileNames": ["d"], "expiry": "1d"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = pl.Steps[0].Files.Keys("a", Vars{Context: map[string]any{"branch": "\n"}})
	var re *RenderError
	if !errors.As(err, &re) || re.Field != "key" || !strings.Contains(err.Error(), "a key may not") {
		t.Errorf("a blank key: %v", err)
	}
}

func TestParseExpiry(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "90d": MaxExpiry, "12h": 12 * time.Hour, "1m": time.Minute} {
		if got, err := ParseExpiry(in); err != nil || got != want {
			t.Errorf("ParseExpiry(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0d", "-1d", "+1d", "91d", "1.5d", "30s", "7 days", "2160h1s"} {
		if _, err := ParseExpiry(in); err == nil {
			t.Errorf("ParseExpiry(%q) accepted", in)
		}
	}
}
