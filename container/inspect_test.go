package container

import (
	"testing"
	"time"
)

func TestRFC3339(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, "0001-01-01T00:00:00Z"},
		{time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC), "2025-03-01T12:30:00Z"},
		{time.Date(2025, 3, 1, 12, 30, 0, 123456789, time.UTC), "2025-03-01T12:30:00.123456789Z"},
		{time.Date(2025, 3, 1, 12, 30, 0, 500000000, time.UTC), "2025-03-01T12:30:00.5Z"},
		{time.Date(2025, 3, 1, 14, 30, 0, 0, time.FixedZone("CEST", 2*3600)), "2025-03-01T12:30:00Z"},
		{time.Time{}.In(time.FixedZone("X", 3600)), "0001-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		if got := rfc3339(tt.in); got != tt.want {
			t.Errorf("rfc3339(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
