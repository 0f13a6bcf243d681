package database

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

// The plain-form encoding writes exactly the bytes the general path (decodeValue, then the
// tuple encoder) writes, and leaves to the general path every value it would refuse or
// convert: escapes and plain text alike, NULs, max_length in characters, ranges, signs,
// Django's ".000" datetimes, offsets, dates for datetimes, nulls of non-nullable fields.
func TestAppendPlainValueMatchesGeneralPath(t *testing.T) {
	text := loadField{Field: platform.Field{Name: "t", Type: "TextField", Null: true}, kind: kindText}
	short := loadField{Field: platform.Field{Name: "s", Type: "CharField", MaxLength: 3}, kind: kindText}
	num := loadField{Field: platform.Field{Name: "n", Type: "IntegerField"}, kind: kindInt}
	pos := loadField{Field: platform.Field{Name: "p", Type: "PositiveIntegerField"}, kind: kindInt}
	when := loadField{Field: platform.Field{Name: "w", Type: "DateTimeField"}, kind: kindDateTime}
	doc := loadField{Field: platform.Field{Name: "j", Type: "JSONField", Null: true}, kind: kindJSON}
	id := loadField{Field: platform.Field{Name: "u", Type: "UUIDField"}, kind: kindUUID}
	flag := loadField{Field: platform.Field{Name: "b", Type: "BooleanField"}, kind: kindBool}
	day := loadField{Field: platform.Field{Name: "d", Type: "DateField"}, kind: kindDate}
	span := loadField{Field: platform.Field{Name: "i", Type: "DurationField"}, kind: kindDuration}
	tests := []struct {
		f        loadField
		oid      uint32
		dataType string
		raw      string
		fast     bool // the plain form takes it
	}{
		{text, oidText, "text", `"plain"`, true},
		{text, oidText, "text", `"esc\"aped\n \u00e9 \ud83d\ude00"`, true},
		{text, oidText, "text", `"nul \u0000"`, false},
		{text, oidText, "text", `null`, true},
		{text, oidText, "text", `12`, false},
		{text, oidVarchar, "character varying", `""`, true},
		{short, oidVarchar, "character varying", `"éé\u00e9"`, true},
		{short, oidVarchar, "character varying", `"abcd"`, false},
		{short, oidVarchar, "character varying", `null`, false},
		{num, oidInt4, "integer", `-42`, true},
		{num, oidInt4, "integer", `2147483648`, false},
		{num, oidInt8, "bigint", `2147483648`, true},
		{num, oidInt2, "smallint", `40000`, false},
		{num, oidInt4, "integer", `"7"`, false},
		{num, oidInt4, "integer", `7.0`, false},
		{pos, oidInt4, "integer", `-1`, false},
		{pos, oidInt4, "integer", `0`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T07:08:09.123456Z"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T07:08:09.000Z"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T07:08:09+02:00"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06"`, false},
		{when, oidTimestamptz, "timestamp with time zone", `" 2024-05-06T07:08:09Z"`, false},
		{doc, oidJSONB, "jsonb", `{"b": [1, 2.50, "x\u00e9"], "a": null}`, true},
		{doc, oidJSON, "json", `[true, {"k": "v"}]`, true},
		{doc, oidJSONB, "jsonb", `null`, true},
		{doc, oidJSONB, "jsonb", `{"unterminated": `, false},
		{id, oidUUID, "uuid", `"0F8FAD5B-D9CB-469F-A165-70867728950E"`, true},
		{id, oidUUID, "uuid", `"0f8fad5b-d9cb-469f-a165-70867728950e"`, true},
		{id, oidUUID, "uuid", `"0f8fad5bd9cb469fa16570867728950e"`, false},
		{id, oidUUID, "uuid", `"0f8fad5b-d9cb-469f-a165-70867728950g"`, false},
		{id, oidUUID, "uuid", `"g0f8fad5-d9cb-469f-a165-70867728950e"`, false},
		{id, oidUUID, "uuid", `"0f8fAD5b-d9cb-469f-a165-7086772895\u0030"`, false},
		{id, oidUUID, "uuid", `"0f8fad5b-d9cb-469f-a165-70867728950"`, false},
		{id, oidUUID, "uuid", `"0f8fad5b+d9cb-469f-a165-70867728950e"`, false},
		{id, oidUUID, "uuid", `"{0f8fad5b-d9cb-469f-a165-70867728950e}"`, false},
		{flag, oidBool, "boolean", `true`, true},
		{flag, oidBool, "boolean", `false`, true},
		{flag, oidBool, "boolean", `"t"`, false},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-02-29T23:59:59.999Z"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"2023-02-29T00:00:00Z"`, false},
		{when, oidTimestamptz, "timestamp with time zone", `"1900-02-28 00:00:00.5"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"0001-01-01T00:00:00Z"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"9999-12-31T23:59:59.999999999999Z"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T07:08:09.0000000000000Z"`, false},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T07:08:09,000"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T07:08:09.Z"`, false},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T24:00:00Z"`, false},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T07:08"`, true},
		{when, oidTimestamptz, "timestamp with time zone", `"2024-05-06T07:08:60Z"`, false},
		{day, oidDate, "date", `"2024-02-29"`, true},
		{day, oidDate, "date", `"1999-12-31"`, true},
		{day, oidDate, "date", `"0000-03-01"`, true},
		{day, oidDate, "date", `"2100-02-29"`, false},
		{day, oidDate, "date", `"2024-2-9"`, false},
		{day, oidDate, "date", `"2024-13-01"`, false},
		{day, oidDate, "date", `"2024-02-29T00:00:00"`, false},
		{span, oidInterval, "interval", `"05:00:00"`, true},
		{span, oidInterval, "interval", `"1 02:03:04.000500"`, true},
		{span, oidInterval, "interval", `"-1 23:59:59.999999"`, true},
		{span, oidInterval, "interval", `"999999 99:99:99.999999"`, true},
		{span, oidInterval, "interval", `"1000000 00:00:00"`, false},
		{span, oidInterval, "interval", `"2 days, 00:00:01"`, false},
		{span, oidInterval, "interval", `"-01:00:00"`, false},
		{span, oidInterval, "interval", `"01:00:00.5"`, false},
		{span, oidInterval, "interval", `"P1DT02H03M04.000500S"`, false},
		{span, oidInterval, "interval", `"+1 00:00:00"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.f.Name+" "+tt.raw, func(t *testing.T) {
			if ok := checkPlainValue(t, &tt.f, tt.oid, tt.dataType, []byte(tt.raw)); ok != tt.fast {
				t.Fatalf("plain form took it: %v, want %v", ok, tt.fast)
			}
		})
	}
}

// checkPlainValue fails t when the plain form takes raw and writes other bytes than the
// general path, or refuses it and changes the buffer; it returns whether it took it.
func checkPlainValue(t *testing.T, f *loadField, oid uint32, dataType string, raw []byte) bool {
	t.Helper()
	prefix := []byte("prefix")
	got, ok := appendPlainValue(bytes.Clone(prefix), f, oid, raw)
	if !ok {
		if !bytes.Equal(got, prefix) {
			t.Fatalf("%s refused, but the buffer changed: %q", raw, got)
		}
		return false
	}
	v, err := decodeValue(f, raw)
	if err != nil {
		t.Fatalf("the general path refuses %s, which the plain form took: %v", raw, err)
	}
	enc := &tupleEncoder{types: pgtype.NewMap(), oids: []uint32{oid}}
	want, err := enc.column(bytes.Clone(prefix), 0, dataType, f, v)
	if err != nil {
		t.Fatalf("the general path refuses %s, which the plain form took: %v", raw, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: plain form wrote %x, general path %x", raw, got, want)
	}
	return true
}

// FuzzAppendPlainValue: whatever the plain form takes of a datetime, date, duration or UUID,
// it writes as the general path does.
func FuzzAppendPlainValue(f *testing.F) {
	for _, s := range []string{`"2024-05-06T07:08:09.123Z"`, `"2024-05-06 07:08:09.000"`, `"0000-02-29T00:00:00,5Z"`,
		`"2024-02-29"`, `"1582-10-10"`, `"1 02:03:04.000500"`, `"-999999 00:00:00"`, `"23:59:59"`, `"0F8FAD5B-d9cb-469f-a165-70867728950e"`} {
		f.Add([]byte(s))
	}
	fields := []struct {
		f        loadField
		oid      uint32
		dataType string
	}{
		{loadField{Field: platform.Field{Name: "w", Type: "DateTimeField"}, kind: kindDateTime}, oidTimestamptz, "timestamp with time zone"},
		{loadField{Field: platform.Field{Name: "d", Type: "DateField"}, kind: kindDate}, oidDate, "date"},
		{loadField{Field: platform.Field{Name: "i", Type: "DurationField"}, kind: kindDuration}, oidInterval, "interval"},
		{loadField{Field: platform.Field{Name: "u", Type: "UUIDField"}, kind: kindUUID}, oidUUID, "uuid"},
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, fd := range fields {
			checkPlainValue(t, &fd.f, fd.oid, fd.dataType, raw)
		}
	})
}
