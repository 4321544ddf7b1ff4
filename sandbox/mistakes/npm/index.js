module.exports = "a package whose only purpose is to leave npm's cache behind";
