// Placeholder until the built-in demo lands (issue: images, preprocessing, evaluation, CLI, demo).
console.log('p2calib demo: not yet available');
