package service

import "testing"

func TestNetworkSetting(t *testing.T) {
	for _, tt := range []struct {
		setting string
		fork    bool
		want    bool
	}{
		{"default", false, true}, {"", false, true}, {"default", true, false},
		{"on", true, true}, {"on", false, true}, {"off", false, false}, {"off", true, false},
	} {
		if got := network(tt.setting, tt.fork); got != tt.want {
			t.Errorf("network(%q, fork=%v) = %v, want %v", tt.setting, tt.fork, got, tt.want)
		}
	}
}
