# Writes the text of INPUT into OUTPUT as a C string named SYMBOL.
# Run as: cmake -DINPUT=... -DOUTPUT=... -DSYMBOL=... -P embed_text.cmake
file(READ "${INPUT}" text)
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
string(REPLACE "\n" "\\n\"\n\"" text "${text}")
get_filename_component(dir "${OUTPUT}" DIRECTORY)
file(MAKE_DIRECTORY "${dir}")
file(WRITE "${OUTPUT}.tmp"
     "/* Generated from ${INPUT}: edit that file, not this one. */\n"
     "extern const char ${SYMBOL}[];\n"
     "const char ${SYMBOL}[] =\n\"${text}\";\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
