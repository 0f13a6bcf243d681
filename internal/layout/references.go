package layout

// References is the metadata's record of the database ↔ storage cross-check: every file path
// a backed-up row names (in a file field of the model description) looked up among the files
// backed up in the same run. A missing file is a broken platform, not a broken backup: it is
// recorded here and warned about, and the backup still succeeds.
type References struct {
	// Checked is false when the backup could not check (Reason says why: it holds no files,
	// or no database).
	Checked bool   `json:"checked"`
	Reason  string `json:"reason,omitempty"`
	// Refs counts the file paths the rows name (a path named by two rows counts twice);
	// Missing those the backup's files lack.
	Refs    int64 `json:"refs"`
	Missing int64 `json:"missing"`
	// MissingList names the first missing references (at most MaxMissingListed), in path
	// order; Truncated says there are more.
	MissingList []MissingReference `json:"missing_list,omitempty"`
	Truncated   bool               `json:"truncated,omitempty"`
}

// MaxMissingListed bounds References.MissingList: a platform that lost a whole prefix may have
// millions of rows naming files it lacks.
const MaxMissingListed = 100

// MissingReference is one row naming a file the storage does not hold.
type MissingReference struct {
	Model string `json:"model"`
	PK    string `json:"pk"`
	Field string `json:"field"`
	Path  string `json:"path"`
}
