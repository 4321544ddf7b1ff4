console.log("headless");
