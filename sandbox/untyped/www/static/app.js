console.log("untyped");
