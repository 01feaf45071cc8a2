console.log('roster');
