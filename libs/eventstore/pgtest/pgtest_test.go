package pgtest

import (
	"regexp"
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^t_[a-z0-9_]*_[0-9a-f]{16}$`)
	for _, name := range []string{"TestX", "TestConformance/ReadAll/limit=7", strings.Repeat("TestVeryLong", 20), "Test Ünïcode"} {
		got := databaseName(name)
		if !valid.MatchString(got) || len(got) > 63 {
			t.Errorf("databaseName(%q) = %q", name, got)
		}
	}
	if databaseName("TestX") == databaseName("TestX") {
		t.Error("databaseName is not random")
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:54329/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:54329/t_x?sslmode=disable"},
		{"postgresql://u:p@h/", "postgresql://u:p@h/t_x"},
		{"postgres://u@h", "postgres://u@h/t_x"},
		{"host=/tmp port=5432 dbname=postgres", "host=/tmp port=5432 dbname=postgres dbname=t_x"},
	} {
		got, err := withDatabase(tc.in, "t_x")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
