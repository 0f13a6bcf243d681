package database

import (
	"testing"
	"time"
)

func TestParseDateTime(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, us int) time.Time {
		return time.Date(y, mo, d, h, mi, s, us*1000, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2023-07-04 03:50:04.191834+00", want: utc(2023, 7, 4, 3, 50, 4, 191834)},
		{in: "2023-07-04 03:50:04+00", want: utc(2023, 7, 4, 3, 50, 4, 0)},
		{in: "2023-07-04 03:50:04.5+05:30", want: utc(2023, 7, 3, 22, 20, 4, 500000)},
		{in: "2023-07-04 03:50:04-01:00:30", want: utc(2023, 7, 4, 4, 50, 34, 0)},
		{in: "2023-07-04T03:50:04.191834", want: utc(2023, 7, 4, 3, 50, 4, 191834)},
		{in: "2023-07-04 03:50:04.1918349999", want: utc(2023, 7, 4, 3, 50, 4, 191834)},
		{in: "2023-07-04 03:50", want: utc(2023, 7, 4, 3, 50, 0, 0)},
		{in: "2023-07-04 03:50:04Z", want: utc(2023, 7, 4, 3, 50, 4, 0)},
		{in: "2023-07-04 03:50:04+0200", want: utc(2023, 7, 4, 1, 50, 4, 0)},
		{in: "2023-02-30 03:50:04", bad: true},
		{in: "2023-07-04", bad: true},
		{in: "2023-07-04 25:00:00", bad: true},
		{in: "2023-07-04 03:50:04+", bad: true},
		{in: "2023-07-04 03:50:04+0", bad: true},
		{in: "2023-07-04 03:50:04+00:", bad: true},
		{in: "2023-07-04 03:50:04+00:00:00:00", bad: true},
		{in: "2023-07-04 03:50:04.", bad: true},
		{in: "infinity", bad: true},
	}
	for _, tt := range tests {
		got, err := parseDateTime([]byte(tt.in))
		if tt.bad {
			if err == nil {
				t.Errorf("parseDateTime(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseDateTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseInterval(t *testing.T) {
	const day = 86400_000000
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "05:00:00", want: 5 * 3600_000000},
		{in: "1 day 02:03:04.0005", want: day + (2*3600+3*60+4)*1_000000 + 500},
		{in: "-1 days +02:03:04", want: -day + (2*3600+3*60+4)*1_000000},
		{in: "-00:00:00.000001", want: -1},
		{in: "3 days", want: 3 * day},
		{in: "1 year 2 mons", want: (365 + 60) * day},
		{in: "-1 years -1 mons", want: -(365 + 30) * day},
		{in: "1 mon -1 days -00:00:01", want: 29*day - 1_000000},
		{in: "100:00:00", want: 100 * 3600_000000},
		{in: "", bad: true},
		{in: "1 fortnight", bad: true},
		{in: "1 day 02:03", bad: true},
		{in: "3", bad: true},
		{in: "00:00:00.1234567", bad: true},
		// Beyond an int64 of microseconds: refused, not wrapped around.
		{in: "200000000 days", bad: true},
		{in: "292472 years", bad: true},
		{in: "2562047789:00:00", bad: true},
		{in: "9223372036854775807 years", bad: true},
		{in: "1 day 9223372036854775807:00:00", bad: true},
	}
	for _, tt := range tests {
		got, err := parseInterval([]byte(tt.in))
		if tt.bad {
			if err == nil {
				t.Errorf("parseInterval(%q) = %d, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseInterval(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

// TestParseIntervalDays: an interval is read exactly as whole days and the microseconds of
// less than a day left, however many days it holds; only what overflows an int64 of days
// is refused.
func TestParseIntervalDays(t *testing.T) {
	tests := []struct {
		in       string
		days, us int64
		bad      bool
	}{
		{in: "200000000 days", days: 200000000},
		{in: "-200000000 days -00:00:00.000001", days: -200000001, us: usDay - 1},
		{in: "2739725 years 11 mons", days: 999999955},
		{in: "-1 years -1 mons", days: -395},
		{in: "1 day -01:00:00", days: 0, us: 23 * usHour},
		{in: "-2562047788:00:54.775808", days: -106751992, us: 71945224192},
		{in: "178956970 years 7 mons 2147483647 days 2562047788:00:54.775807", days: 67573529898, us: 4*usHour + 54775807},
		{in: "-178956970 years -8 mons -2147483648 days -2562047788:00:54.775808", days: -67573529930, us: 71945224192},
		{in: "00:00:00", days: 0},
		{in: "9223372036854775807 years", bad: true},
		{in: "9223372036854775807 days 24:00:00", bad: true},
		{in: "1 day 02:03", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		days, us, err := parseIntervalDays([]byte(tt.in))
		switch {
		case tt.bad && err == nil:
			t.Errorf("parseIntervalDays(%q) = %d, %d; want error", tt.in, days, us)
		case !tt.bad && (err != nil || days != tt.days || us != tt.us):
			t.Errorf("parseIntervalDays(%q) = %d, %d, %v; want %d, %d", tt.in, days, us, err, tt.days, tt.us)
		}
	}
}

func TestAppendPKList(t *testing.T) {
	for in, want := range map[string]string{"18,36,22,29": "[18, 36, 22, 29]", "7": "[7]"} {
		got, err := appendPKList(nil, []byte(in))
		if err != nil || string(got) != want {
			t.Errorf("appendPKList(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", ",", "1,", "1,,2", "a"} {
		if got, err := appendPKList(nil, []byte(in)); err == nil {
			t.Errorf("appendPKList(%q) = %s, want error", in, got)
		}
	}
}

func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{"2023-07-04 03:50:04.191834+00", "2023-07-04T03:50:04", "2023-07-04 03:50:04+05:30:15"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseDateTime(b)
		if err == nil && got.Location() != time.UTC {
			t.Errorf("parseDateTime(%q) not in UTC", b)
		}
	})
}

func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{"1 day 02:03:04.0005", "-1 years -1 mons +00:00:01", "05:00:00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { parseInterval(b) })
}
