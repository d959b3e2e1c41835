// Compile a solc standard-JSON input file with the npm solc package: node solcjs_compile.cjs SOLC_DIR INPUT
const solc = require(process.argv[2]);
const fs = require("fs");
process.stdout.write(solc.compile(fs.readFileSync(process.argv[3], "utf8")));
