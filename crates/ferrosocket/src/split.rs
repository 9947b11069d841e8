pub struct ReadHalf;
pub struct WriteHalf;
