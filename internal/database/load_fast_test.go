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
		{flag, oidBool, "boolean", `true`, true},
		{flag, oidBool, "boolean", `false`, true},
		{flag, oidBool, "boolean", `"t"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.f.Name+" "+tt.raw, func(t *testing.T) {
			prefix := []byte("prefix")
			got, ok := appendPlainValue(bytes.Clone(prefix), &tt.f, tt.oid, []byte(tt.raw))
			if ok != tt.fast {
				t.Fatalf("plain form took it: %v, want %v", ok, tt.fast)
			}
			if !ok {
				if !bytes.Equal(got, prefix) {
					t.Fatalf("refused, but the buffer changed: %q", got)
				}
				return
			}
			v, err := decodeValue(&tt.f, []byte(tt.raw))
			if err != nil {
				t.Fatalf("the general path refuses what the plain form took: %v", err)
			}
			enc := &tupleEncoder{types: pgtype.NewMap(), oids: []uint32{tt.oid}}
			want, err := enc.column(bytes.Clone(prefix), 0, tt.dataType, &tt.f, v)
			if err != nil {
				t.Fatalf("the general path refuses what the plain form took: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("plain form wrote %x, general path %x", got, want)
			}
		})
	}
}
