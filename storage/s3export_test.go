package storage

// HoldFewerParts applies PutLowMemory's limit to a Writer from Create.
func HoldFewerParts(w Writer) { w.(partBuffered).holdFewerParts() }

// S3PartBuffers is how many part buffers an S3 Writer has made so far.
func S3PartBuffers(w Writer) int { return w.(*s3Writer).bufs }
