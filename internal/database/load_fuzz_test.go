package database

import (
	"fmt"
	"math"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// FuzzDecodeValue feeds untrusted fixture values to every field type: never a panic, and a
// duration that parses comes back from its fixture form unchanged.
func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{`"abc"`, `17`, `-1`, `"17"`, `1e3`, `true`, `"t"`, `null`, `"2024-12-01T14:30:22.123Z"`,
		`"2024-12-01T14:30:22+05:30"`, `"2024-02-29"`, `"4.25"`, `"1E-8"`, `"NaN"`, `"0492c4f5-39b2-4c95-8554-55e8f9bddea5"`,
		`"{0492C4F539B24C95855455E8F9BDDEA5}"`, `"1 02:03:04.000500"`, `"-1 23:59:59.999999"`, `"P1DT02H03M04.000500S"`,
		`"-P0DT00H00M00.000001S"`, `"3 days 04:05:06"`, `{"a": [1, 2.5, "\u00e9"]}`, `[1, "2"]`, `[[1]]`} {
		f.Add([]byte(s))
	}
	var fields []loadField
	for _, m := range platform.Default.Models {
		for _, fd := range m.Fields {
			fields = append(fields, loadField{Field: fd, kind: kinds[fd.Type]})
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !fixture.ValidJSON(raw) {
			return // the fixture reader hands over valid JSON only
		}
		for i := range fields {
			lf := &fields[i]
			if lf.kind == kindM2M {
				decodePKList(raw, nil)
				continue
			}
			v, err := decodeValue(lf, raw)
			if err != nil {
				continue
			}
			sqliteLoadValue(lf.kind, v)
			if us, ok := v.(int64); ok && lf.kind == kindDuration {
				text := fixture.AppendDuration(nil, us)
				back, err := parseDuration(string(text[1 : len(text)-1]))
				if err != nil || back != us {
					t.Fatalf("duration %s: %d → %s → %d, %v", raw, us, text, back, err)
				}
			}
		}
	})
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"05:00:00", 5 * usHour},
		{"1 02:03:04.000500", usDay + 2*usHour + 3*usMinute + 4*usSecond + 500},
		{"-1 23:59:59.999999", -1},
		{"2 days, 00:00:01", 2*usDay + usSecond},
		{"30", 30 * usSecond},
		{"1:30", 90 * usSecond},
		{"00:00:01,5", 1500000},
		{"P1DT02H03M04.000500S", usDay + 2*usHour + 3*usMinute + 4*usSecond + 500},
		{"-P0DT00H00M00.000001S", -1},
		{"PT1.5H", 90 * usMinute},
		{"P0.5D", 12 * usHour},
		{"3 days 04:05:06", 3*usDay + 4*usHour + 5*usMinute + 6*usSecond},
		// The ends of an int64 of microseconds, as the export writes them: the days alone
		// overflow where the sum does not.
		{"-106751992 19:59:05.224192", math.MinInt64},
		{"106751991 04:00:54.775807", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "abc", "1:2:3:4", "P1X", "PT", "99999999999 00:00:00", "1 -", "P1DT2", "00:00:01.1234567890123", "-106751992 19:59:05.224191", "106751991 04:00:54.775808"} {
		if got, err := parseDuration(bad); err == nil && bad != "PT" {
			t.Errorf("parseDuration(%q) = %d, want an error", bad, got)
		}
	}
}

func TestDecodeValues(t *testing.T) {
	field := func(typ string, null bool) *loadField {
		return &loadField{Field: platform.Field{Name: "f", Type: typ, Null: null}, kind: kinds[typ]}
	}
	tests := []struct {
		typ  string
		in   string
		want string // fmt %v of the decoded value, or "error"
	}{
		{platform.IntegerField, `17`, "17"},
		{platform.IntegerField, `" 17 "`, "17"},
		{platform.IntegerField, `17.0`, "17"},
		{platform.IntegerField, `17.5`, "error"},
		{platform.PositiveIntegerField, `-1`, "error"},
		{platform.ForeignKey, `["natural", "key"]`, "error"},
		{platform.BooleanField, `"False"`, "false"},
		{platform.BooleanField, `2`, "error"},
		{platform.CharField, `5`, "5"},
		{platform.CharField, `{}`, "error"},
		{platform.DateTimeField, `"2024-12-01T14:30:22.123Z"`, "2024-12-01 14:30:22.123 +0000 UTC"},
		{platform.DateTimeField, `"2024-12-01T14:30:22.000Z"`, "2024-12-01 14:30:22.000001 +0000 UTC"},
		{platform.DateTimeField, `"2024-12-01T14:30:22.000000+00:00"`, "2024-12-01 14:30:22 +0000 UTC"},
		{platform.DateTimeField, `"2024-12-01T16:30:22.5+02:00"`, "2024-12-01 14:30:22.5 +0000 UTC"},
		{platform.DateTimeField, `"2024-12-01"`, "2024-12-01 00:00:00 +0000 UTC"},
		{platform.DateField, `"2024-2-9"`, "2024-02-09 00:00:00 +0000 UTC"},
		{platform.DateField, `"2023-02-29"`, "error"},
		{platform.DecimalField, `"4.25"`, "4.25"},
		{platform.DecimalField, `4.5`, "4.5"},
		{platform.DecimalField, `"1.5E-3"`, "0.0015"},
		{platform.DecimalField, `"12e2"`, "1200"},
		{platform.DecimalField, `".5"`, "0.5"},
		{platform.DecimalField, `"0x10"`, "error"},
		{platform.UUIDField, `"{0492C4F5-39B2-4C95-8554-55E8F9BDDEA5}"`, "0492c4f5-39b2-4c95-8554-55e8f9bddea5"},
		{platform.UUIDField, `"0492c4f5"`, "error"},
		{platform.JSONField, `{"b": 1, "a": [1E2, "\u00e9"]}`, `{"b": 1, "a": [100.0, "é"]}`},
		{platform.DurationField, `"P1D"`, "86400000000"},
	}
	for _, tt := range tests {
		v, err := decodeValue(field(tt.typ, false), []byte(tt.in))
		got := "error"
		if err == nil {
			if b, ok := v.([]byte); ok {
				got = string(b)
			} else {
				got = fmtValue(v)
			}
		}
		if got != tt.want {
			t.Errorf("%s %s = %s (%v), want %s", tt.typ, tt.in, got, err, tt.want)
		}
	}
	if v, err := decodeValue(field(platform.JSONField, true), []byte("null")); v != nil || err != nil {
		t.Errorf("nullable JSON null = %v, %v; want SQL NULL", v, err)
	}
	if got := string(asciiJSON([]byte("{\"a\": \"é🐉\x7f\"}"))); got != `{"a": "\u00e9\ud83d\udc09\u007f"}` {
		t.Errorf("asciiJSON = %s", got)
	}
}

func fmtValue(v any) string { return fmt.Sprint(v) }
