package database

// ParsedObjects lets the package's external tests compare fixtures by value.
var ParsedObjects = parsedObjects
